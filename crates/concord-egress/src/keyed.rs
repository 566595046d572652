//! Keyed SCO ids (issue 15, item 3): the id under which an audience receives a rewritten
//! SCO, and the way back from it.
//!
//! A stored SCO id is usually the UUIDv5 of the SCO's value (STIX 2.1 §2.9), so a copy whose
//! value was pseudonymised must not carry it: anyone could confirm a guessed e-mail address
//! by computing its id. The keyed id is a keyed pseudorandom permutation of the stored UUID:
//! the UUID's 122 free bits (all but the version nibble and the variant bits, RFC 9562 §4)
//! go through a four-round Feistel network (Luby–Rackoff) whose round function is
//! HMAC-SHA-256 under the audience's pseudonym-group key, tweaked by the object type and the
//! stored version nibble. The result is written as a UUIDv5 (version and variant bits of
//! RFC 9562 §5.5), so it is a well-formed STIX identifier. Without the key it is unlinkable
//! to the value; with it, the node turns a keyed id back into the few stored ids it may
//! come from ([`stored_candidates`]), so that `match[id]` and `GET …/objects/{id}/` find a
//! renamed SCO by one indexed look-up, whatever the size of the collection.

const HALF: u32 = 61;
const MASK_HALF: u64 = (1 << HALF) - 1;
const ROUNDS: u8 = 4;
/// The RFC 4122 variant, `10` in the two high bits of octet 8.
const VARIANT_RFC4122: u128 = 0b10;
/// The versions a stored id may have: RFC 9562 defines 1 to 8.
const STORED_VERSIONS: std::ops::RangeInclusive<u8> = 1..=8;

/// The 122 bits of a UUID that are neither its version nor its variant.
fn free_bits(uuid: u128) -> u128 {
    let hi48 = uuid >> 80;
    let mid12 = (uuid >> 64) & 0xfff;
    let lo62 = uuid & ((1 << 62) - 1);
    (hi48 << 74) | (mid12 << 62) | lo62
}

/// A UUID from its 122 free bits, a version and the RFC 4122 variant.
fn assemble(free: u128, version: u8) -> u128 {
    let hi48 = free >> 74;
    let mid12 = (free >> 62) & 0xfff;
    let lo62 = free & ((1 << 62) - 1);
    (hi48 << 80)
        | (u128::from(version & 0xf) << 76)
        | (mid12 << 64)
        | (VARIANT_RFC4122 << 62)
        | lo62
}

fn round(key: &[u8], object_type: &str, version: u8, i: u8, half: u64) -> u64 {
    let d = crate::hmac(
        key,
        &[
            b"concord/sco-id/v2\0",
            object_type.as_bytes(),
            &[0, version, i],
            &half.to_be_bytes(),
        ],
    );
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b) & MASK_HALF
}

fn permute(key: &[u8], object_type: &str, version: u8, free: u128) -> u128 {
    let (mut l, mut r) = ((free >> HALF) as u64, (free as u64) & MASK_HALF);
    for i in 0..ROUNDS {
        (l, r) = (r, l ^ round(key, object_type, version, i, r));
    }
    (u128::from(l) << HALF) | u128::from(r)
}

fn unpermute(key: &[u8], object_type: &str, version: u8, free: u128) -> u128 {
    let (mut l, mut r) = ((free >> HALF) as u64, (free as u64) & MASK_HALF);
    for i in (0..ROUNDS).rev() {
        (l, r) = (r ^ round(key, object_type, version, i, l), l);
    }
    (u128::from(l) << HALF) | u128::from(r)
}

fn split(id: &str) -> Option<(&str, u128)> {
    let (object_type, uuid) = id.split_once("--")?;
    Some((object_type, uuid::Uuid::parse_str(uuid).ok()?.as_u128()))
}

fn format(object_type: &str, uuid: u128) -> String {
    format!(
        "{object_type}--{}",
        uuid::Uuid::from_u128(uuid).hyphenated()
    )
}

/// The keyed id (`type--UUID`, a UUIDv5 in form) of the stored id `stored_id` under `key`.
/// `None` when `stored_id` is not `type--UUID`.
pub(crate) fn keyed_id(key: &[u8], stored_id: &str) -> Option<String> {
    let (object_type, uuid) = split(stored_id)?;
    let version = ((uuid >> 76) & 0xf) as u8;
    if (uuid >> 62) & 0b11 != VARIANT_RFC4122 {
        // Not an RFC 4122 UUID (the validator refuses them): nothing to keep of its form.
        return None;
    }
    let free = permute(key, object_type, version, free_bits(uuid));
    Some(format(object_type, assemble(free, 5)))
}

/// The stored ids whose keyed id under `key` is `id`: one per stored version nibble (1–8).
/// Each keys to `id`, so a store could hold two of them only by a collision of 122 random
/// bits. Empty when `id` is not `type--UUID` in the keyed form (version 5, RFC 4122
/// variant).
pub(crate) fn stored_candidates(key: &[u8], id: &str) -> Vec<String> {
    let Some((object_type, uuid)) = split(id) else {
        return Vec::new();
    };
    if (uuid >> 76) & 0xf != 5 || (uuid >> 62) & 0b11 != VARIANT_RFC4122 {
        return Vec::new();
    }
    let free = free_bits(uuid);
    STORED_VERSIONS
        .map(|v| {
            format(
                object_type,
                assemble(unpermute(key, object_type, v, free), v),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &str = "email-addr--2d77a846-6264-5d51-b586-e43822ea1ea3";

    #[test]
    fn keyed_ids_are_stable_well_formed_and_keyed() {
        let a = keyed_id(b"k1", STORED).unwrap();
        assert_eq!(a, keyed_id(b"k1", STORED).unwrap());
        assert_ne!(a, keyed_id(b"k2", STORED).unwrap());
        assert_ne!(a, STORED);
        let uuid = uuid::Uuid::parse_str(a.strip_prefix("email-addr--").unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 5);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert!(concord_stix::StixId::parse(&a).is_ok(), "{a}");
        // The type is part of the key: the same UUID under another type is another id.
        let other = keyed_id(b"k1", "ipv4-addr--2d77a846-6264-5d51-b586-e43822ea1ea3").unwrap();
        assert_ne!(
            other.split_once("--").unwrap().1,
            a.split_once("--").unwrap().1
        );
    }

    #[test]
    fn a_keyed_id_leads_back_to_its_stored_id_only_with_the_key() {
        let stored = [
            STORED,
            "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd",
            "file--00000000-0000-4000-8000-000000000000",
            "user-account--ffffffff-ffff-1fff-bfff-ffffffffffff",
            "domain-name--017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        ];
        for s in stored {
            let k = keyed_id(b"group key", s).unwrap();
            let back = stored_candidates(b"group key", &k);
            assert_eq!(back.len(), 8);
            assert_eq!(back.iter().filter(|c| c.as_str() == s).count(), 1, "{s}");
            // Every candidate is a well-formed id of another version that keys to the same
            // id (a store holds two of them with probability 2^-122).
            let mut versions = Vec::new();
            for c in &back {
                assert_eq!(keyed_id(b"group key", c).as_deref(), Some(k.as_str()));
                let (t, u) = c.split_once("--").unwrap();
                assert_eq!(t, s.split_once("--").unwrap().0);
                versions.push(uuid::Uuid::parse_str(u).unwrap().get_version_num());
            }
            assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
            assert!(!stored_candidates(b"another key", &k).iter().any(|c| c == s));
        }
        assert!(stored_candidates(b"k", "email-addr--not-a-uuid").is_empty());
        // A UUIDv4 is never a keyed id.
        assert!(stored_candidates(b"k", "file--00000000-0000-4000-8000-000000000000").is_empty());
    }
}
