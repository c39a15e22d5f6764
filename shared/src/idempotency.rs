//! The pieces of the idempotency kit that are not storage: how long a claim may be held and
//! how a request is fingerprinted. The port is [`crate::ports::Idempotency`], the DynamoDB
//! record is [`crate::aws::DynamoIdempotency`], the HTTP side is
//! [`crate::http::idempotent`].

use crate::domain::Timestamp;

/// How long a claim is held when the invocation's deadline is unknown (tests, local tools).
const DEFAULT_LEASE_SECONDS: i64 = 60;

/// When a claim made by this invocation should lapse: its Lambda deadline (milliseconds since
/// the epoch), rounded up to whole seconds. A holder that crashes can no longer be running
/// after its deadline, so the work is free again from then on, and not a moment earlier.
pub fn lease_until(deadline_ms: Option<u64>) -> Timestamp {
    deadline_ms
        .and_then(|ms| i64::try_from(ms.div_ceil(1000)).ok())
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
        .map(Timestamp::from_datetime)
        .unwrap_or_else(|| Timestamp::now().plus_seconds(DEFAULT_LEASE_SECONDS))
}

/// A SHA-256 over the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    keyed_fingerprint(&[], parts)
}

/// [`fingerprint`] as an HMAC-SHA256 under `pepper` when it is not empty: for requests that
/// carry a secret (a signup's password), so the stored fingerprint cannot be tested against
/// guesses by whoever reads the table.
pub fn keyed_fingerprint(pepper: &[u8], parts: &[&[u8]]) -> String {
    let framed = |update: &mut dyn FnMut(&[u8])| {
        for part in parts {
            update(&(part.len() as u64).to_be_bytes());
            update(part);
        }
    };
    let digest: Vec<u8> = if pepper.is_empty() {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        framed(&mut |bytes| context.update(bytes));
        context.finish().as_ref().to_vec()
    } else {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pepper);
        let mut context = aws_lc_rs::hmac::Context::with_key(&key);
        framed(&mut |bytes| context.update(bytes));
        context.sign().as_ref().to_vec()
    };
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ends_at_the_deadline_rounded_up_to_the_second() {
        let lease = lease_until(Some(1_700_000_000_001));
        assert_eq!(lease.unix_seconds(), 1_700_000_001);
    }

    #[test]
    fn a_lease_without_a_deadline_lasts_a_minute() {
        let before = Timestamp::now().unix_seconds();
        let lease = lease_until(None).unix_seconds();
        assert!((before + 59..=before + 61).contains(&lease), "{lease}");
    }

    #[test]
    fn fingerprints_tell_differently_split_parts_apart() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"ab", b"c"]));
        assert_eq!(fingerprint(&[b""]).len(), 64);
    }

    #[test]
    fn a_peppered_fingerprint_differs_from_the_plain_one_and_by_pepper() {
        let plain = fingerprint(&[b"secret body"]);
        let one = keyed_fingerprint(b"pepper-1", &[b"secret body"]);
        let two = keyed_fingerprint(b"pepper-2", &[b"secret body"]);

        assert_ne!(plain, one);
        assert_ne!(one, two);
        assert_eq!(one, keyed_fingerprint(b"pepper-1", &[b"secret body"]));
    }
}
