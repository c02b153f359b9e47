// The preamble and header of a float32 .npy file of `tokens` x `dim` values in C order (the
// values follow it, row by row): for the memory bench (bench/page.mjs) and the page's tests.
export function npyHeader(tokens, dim) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${tokens}, ${dim}), }`;
  // The data start on a 64-byte boundary, the header ends with a newline.
  while ((10 + header.length + 1) % 64) header += ' ';
  header += '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head);
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1')]);
}
