//! The kernel's `hsiphash` on 64-bit machines, which is SipHash-1-3 with two 64-bit key
//! words, truncated to 32 bits (lib/siphash.c). Maglev (mh) hashes with it, so its table
//! is the kernel's only if this is bit for bit the same.

const C0: u64 = 0x736f_6d65_7073_6575;
const C1: u64 = 0x646f_7261_6e64_6f6d;
const C2: u64 = 0x6c79_6765_6e65_7261;
const C3: u64 = 0x7465_6462_7974_6573;

fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// `hsiphash(&value, 4, key)` for a 4-byte value as a little-endian machine stores it.
pub fn hsiphash_u32(value: u32, key: [u64; 2]) -> u32 {
    let mut v = [C0 ^ key[0], C1 ^ key[1], C2 ^ key[0], C3 ^ key[1]];
    // No full 8-byte block; the 4 bytes and the length go into the last word.
    let b: u64 = (4u64 << 56) | u64::from(value);
    v[3] ^= b;
    round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    round(&mut v);
    round(&mut v);
    round(&mut v);
    (v[0] ^ v[1] ^ v[2] ^ v[3]) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    #[test]
    fn matches_an_independent_siphash_1_3() {
        for key in [[0, 0], [2654435761, 2654435761], [2654446892, 2654446892]] {
            for value in [0u32, 1, 80, 0x0a00_0001, 0xdead_beef, u32::MAX] {
                let mut other = siphasher::sip::SipHasher13::new_with_keys(key[0], key[1]);
                other.write(&value.to_le_bytes());
                assert_eq!(hsiphash_u32(value, key), other.finish() as u32, "{value}");
            }
        }
    }

    #[test]
    fn keyed_reference_vector() {
        // SipHash-1-3 of the bytes 00 01 02 03 under the key 00..0f, low 32 bits.
        let key = [
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        ];
        assert_eq!(
            hsiphash_u32(u32::from_le_bytes([0, 1, 2, 3]), key),
            0x88d3_8328
        );
    }
}
