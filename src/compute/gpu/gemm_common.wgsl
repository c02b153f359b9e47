// Shared by the product modules (`gemm.wgsl`, `gemm_vec.wgsl`; gpu/mod.rs prepends it after
// common.wgsl): the skip list, the store parameters, the epilogue's arithmetic and the 8 x 8
// register block. Nothing here reads a tensor, so each module declares b1..b4 as it reads them
// (values or vectors of four).

// Whether `member` is to be left alone (no skip flags: none is).
fn skipped(member: u32) -> bool {
    let at = 14u + p[13];
    return p[at] != 0u && p[at + 1u + member] != 0u;
}

// How the kernel stores C, read from the parameters once, before the kernel's first branch:
// llvmpipe loads a parameter as one value for all lanes only outside every branch and loop,
// and as a loop over its lanes inside them (each element's store read them again, and the
// stores cost the products of short K more than their multiply-adds). `scale` is the
// member's (epilogues 2 and 3), set once the member is known.
struct Out {
    m: u32,
    n: u32,
    alpha: f32,
    beta: f32,
    epilogue: u32,
    flags: u32,
    operand_broadcast: bool,
    scale: f32,
}

fn out_params() -> Out {
    return Out(p[0], p[1], pf(7u), pf(8u), p[10], p[12], p[11] == 1u, 0.0);
}

// `o` with the scale of `member` where its epilogue takes one.
fn out_for(o: Out, member: u32) -> Out {
    var r = o;
    if (o.epilogue >= 2u) {
        r.scale = member_value(14u, p[13], member);
    }
    return r;
}

// alpha c + beta old, then the epilogue with its operand x (the bias at c's rows, the signals of
// the residual, the codes of the gradient): four values of C at once (`gemm_vec.wgsl`) or one
// (the others, through .x).
fn finish(c: vec4<f32>, old: vec4<f32>, x: vec4<f32>, o: Out) -> vec4<f32> {
    let zero = vec4<f32>(0.0);
    var out = o.alpha * c;
    if (o.beta != 0.0) {
        out += o.beta * old;
    }
    if (o.epilogue == 1u) {
        if ((o.flags & 1u) != 0u) {
            out = out + x;
        }
        if ((o.flags & 2u) != 0u) {
            let nan = (bitcast<vec4<u32>>(out) & vec4(0x7fffffffu)) > vec4(0x7f800000u);
            out = select(zero, out, (out > zero) & !nan);
        }
    } else if (o.epilogue == 2u) {
        out = (out - x) * o.scale;
    } else if (o.epilogue == 3u) {
        if ((o.flags & 1u) != 0u) {
            out = out + select(select(zero, vec4(-1.0), x < zero), vec4(1.0), x > zero) * o.scale;
        }
        if ((o.flags & 2u) != 0u) {
            out = select(zero, out, x > zero);
        }
    }
    return out;
}

// Whether the epilogue reads an operand, and where for the element of C at `at` (row `row` of
// member `member`): the bias by row, the residual's signals and the gradient's codes as C.
fn reads_operand(o: Out) -> bool {
    return (o.epilogue == 1u && (o.flags & 1u) != 0u) || o.epilogue >= 2u;
}
fn operand_at(at: u32, row: u32, member: u32, o: Out) -> u32 {
    let bias = select(member, 0u, o.operand_broadcast) * o.m + row;
    let residual = select(at, at - member * o.m * o.n, o.operand_broadcast);
    return select(select(at, residual, o.epilogue == 2u), bias, o.epilogue == 1u);
}

// The block of C that invocation i of a blocked kernel computes (blocks of side x side over an
// m x n product, a stack of `members`): its member, first row and column, and whether there is
// one to compute (none past the last block or for a member to leave alone).
struct Place {
    work: bool,
    member: u32,
    row: u32,
    col: u32,
}

fn place(i: u32, m: u32, n: u32, side: u32, members: u32) -> Place {
    let row_blocks = (m + side - 1u) / side;
    let per = row_blocks * ((n + side - 1u) / side);
    let member = i / per;
    let work = i < per * members && !skipped(member);
    return Place(work, member, (i % per) % row_blocks * side, (i % per) / row_blocks * side);
}

// An 8 x 8 block of C as sixteen named vectors (column j: rows 0-3 in cjl, rows 4-7 in cjh)
// rather than an array, which naga would leave in function memory (indexed by loop variables).
struct Block {
    c0l: vec4<f32>,
    c0h: vec4<f32>,
    c1l: vec4<f32>,
    c1h: vec4<f32>,
    c2l: vec4<f32>,
    c2h: vec4<f32>,
    c3l: vec4<f32>,
    c3h: vec4<f32>,
    c4l: vec4<f32>,
    c4h: vec4<f32>,
    c5l: vec4<f32>,
    c5h: vec4<f32>,
    c6l: vec4<f32>,
    c6h: vec4<f32>,
    c7l: vec4<f32>,
    c7h: vec4<f32>,
}

fn block_zero() -> Block {
    let z = vec4<f32>(0.0);
    return Block(z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z);
}

// `a` plus one step of K: the block's rows of op(A) (al, then ah) times its columns of op(B)
// (bl, then bh), each element one multiply-add.
fn block_fma(a: Block, al: vec4<f32>, ah: vec4<f32>, bl: vec4<f32>, bh: vec4<f32>) -> Block {
    return Block(
        fma(al, vec4(bl.x), a.c0l),
        fma(ah, vec4(bl.x), a.c0h),
        fma(al, vec4(bl.y), a.c1l),
        fma(ah, vec4(bl.y), a.c1h),
        fma(al, vec4(bl.z), a.c2l),
        fma(ah, vec4(bl.z), a.c2h),
        fma(al, vec4(bl.w), a.c3l),
        fma(ah, vec4(bl.w), a.c3h),
        fma(al, vec4(bh.x), a.c4l),
        fma(ah, vec4(bh.x), a.c4h),
        fma(al, vec4(bh.y), a.c5l),
        fma(ah, vec4(bh.y), a.c5h),
        fma(al, vec4(bh.z), a.c6l),
        fma(ah, vec4(bh.z), a.c6h),
        fma(al, vec4(bh.w), a.c7l),
        fma(ah, vec4(bh.w), a.c7h),
    );
}
