// Typed views over chunk bytes: zero-copy when the platform is little-endian and the absolute offset is aligned,
// otherwise a little-endian copy. Views alias the input buffer; callers that keep them must not reuse that buffer.

/** The wire is little-endian; typed-array views read it directly only on little-endian hosts (all current ones). */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function aligned(bytes: Uint8Array, offset: number, size: number): boolean {
  return HOST_IS_LITTLE_ENDIAN && (bytes.byteOffset + offset) % size === 0;
}

/** `count` little-endian u16 values at `offset`. */
export function u16At(bytes: Uint8Array, offset: number, count: number): Uint16Array {
  if (aligned(bytes, offset, 2)) return new Uint16Array(bytes.buffer, bytes.byteOffset + offset, count);
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, 2 * count);
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = v.getUint16(2 * i, true);
  return out;
}

/** `count` little-endian i32 values at `offset`. */
export function i32At(bytes: Uint8Array, offset: number, count: number): Int32Array {
  if (aligned(bytes, offset, 4)) return new Int32Array(bytes.buffer, bytes.byteOffset + offset, count);
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, 4 * count);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = v.getInt32(4 * i, true);
  return out;
}

/** `count` little-endian f32 values at `offset`. */
export function f32At(bytes: Uint8Array, offset: number, count: number): Float32Array {
  if (aligned(bytes, offset, 4)) return new Float32Array(bytes.buffer, bytes.byteOffset + offset, count);
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, 4 * count);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = v.getFloat32(4 * i, true);
  return out;
}

/** Copies a typed array's values little-endian into `out` at `offset`. */
export function putLittleEndian(out: Uint8Array, offset: number, src: Uint16Array | Int32Array | Float32Array): void {
  if (HOST_IS_LITTLE_ENDIAN) {
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), offset);
    return;
  }
  const v = new DataView(out.buffer, out.byteOffset + offset, src.byteLength);
  for (let i = 0; i < src.length; i++) {
    if (src instanceof Uint16Array) v.setUint16(2 * i, src[i], true);
    else if (src instanceof Int32Array) v.setInt32(4 * i, src[i], true);
    else v.setFloat32(4 * i, src[i], true);
  }
}
