/**
 * Fixed-size, NUL-padded ASCII names in the ABI's binary headers (the hypercall HELLO's driver
 * name, the code image's driver name, a spare's PREPARE profile): printable characters, then only
 * NULs to the end of the field.
 */

/**
 * The name in `field`: its printable characters (from `min`, 0x20 with the space, to 0x7e) up to
 * the padding; '' when the field is all NULs; undefined when a character is not printable or one
 * follows the padding. Callers throw their own error for either.
 */
export function paddedAscii(field: Uint8Array, min = 0x20): string | undefined {
  let name = '';
  let ended = false;
  for (const c of field) {
    if (c === 0) {
      ended = true;
      continue;
    }
    if (ended || c < min || c > 0x7e) return undefined;
    name += String.fromCharCode(c);
  }
  return name;
}
