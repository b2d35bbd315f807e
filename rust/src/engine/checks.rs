//! What a transfer proves about its bytes: which digests to compute
//! (`wanted`) and their comparison with the expected ones (`verify`).

use super::hasher::{DigestHex, Wanted};
use super::spec::TransferSpec;
use crate::error::{Error, Result};

pub(super) fn size_mismatch(expected: u64, actual: u64) -> Error {
    Error::ChecksumMismatch {
        algorithm: "size".into(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

pub(super) fn wanted(spec: &TransferSpec, size: Option<u64>) -> Result<Wanted> {
    if !spec.hash {
        return Ok(Wanted::default());
    }
    let git_sha1_size = match &spec.git_sha1 {
        None => None,
        Some(_) => Some(size.or(spec.expected_size).ok_or_else(|| {
            Error::InvalidInput(
                "git_sha1: the server sends no size and the git blob digest needs it; \
                 pass expected_size as well"
                    .into(),
            )
        })?),
    };
    // sha256 is the digest of record only when nothing else proves the bytes: a file
    // the source gives another digest for (md5, multipart md5, crc32c, crc64nvme, git
    // blob sha1) is verified by that, and a sha256 on top would cost ~0.7 CPU-s per GB
    let proven_otherwise = spec.md5.is_some()
        || spec.md5_multipart.is_some()
        || spec.crc32c.is_some()
        || spec.crc64nvme.is_some()
        || spec.git_sha1.is_some();
    Ok(Wanted {
        sha256: spec.sha256.is_some() || !proven_otherwise,
        md5: spec.md5.is_some(),
        git_sha1_size,
        xxh3: spec.xxh3,
        md5_part_size: spec.md5_multipart.as_ref().map(|(p, _)| *p),
        // unlike crc32c (combined from the ranges' crcs, computed anyway for the
        // journal) this one costs a pass over the bytes: only when it is checked
        crc64nvme: spec.crc64nvme.is_some(),
    })
}

/// Compare digests with the expected values; returns what was verified.
pub(super) fn verify(spec: &TransferSpec, d: &DigestHex, size: u64) -> Result<Vec<String>> {
    let mut verified = Vec::new();
    if let Some(exp) = spec.expected_size {
        if exp != size {
            return Err(size_mismatch(exp, size));
        }
        verified.push("size".to_string());
    }
    if !spec.hash {
        return Ok(verified);
    }
    let multipart = spec.md5_multipart.as_ref().map(|(_, d)| d.clone());
    let checks = [
        ("sha256", &spec.sha256, &d.sha256),
        ("md5", &spec.md5, &d.md5),
        ("git-sha1", &spec.git_sha1, &d.git_sha1),
        ("crc32c", &spec.crc32c, &d.crc32c),
        ("crc64nvme", &spec.crc64nvme, &d.crc64nvme),
        ("md5-multipart", &multipart, &d.md5_multipart),
    ];
    for (alg, expected, actual) in checks {
        if let Some(exp) = expected {
            let act = actual.clone().unwrap_or_default();
            if &act != exp {
                return Err(Error::ChecksumMismatch {
                    algorithm: alg.into(),
                    expected: exp.clone(),
                    actual: act,
                });
            }
            verified.push(alg.to_string());
        }
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_names_the_new_algorithms() {
        let d = DigestHex {
            crc32c: Some("0000abcd".into()),
            md5_multipart: Some("00112233445566778899aabbccddeeff-3".into()),
            ..Default::default()
        };
        let mut spec = TransferSpec {
            hash: true,
            crc32c: Some("0000abcd".into()),
            md5_multipart: Some((8, "00112233445566778899aabbccddeeff-3".into())),
            ..Default::default()
        };
        assert_eq!(verify(&spec, &d, 20).unwrap(), ["crc32c", "md5-multipart"]);
        spec.md5_multipart = Some((8, "00112233445566778899aabbccddeeff-4".into()));
        match verify(&spec, &d, 20) {
            Err(Error::ChecksumMismatch { algorithm, .. }) => {
                assert_eq!(algorithm, "md5-multipart")
            }
            r => panic!("{r:?}"),
        }
        spec.crc32c = Some("ffffffff".into());
        match verify(&spec, &d, 20) {
            Err(Error::ChecksumMismatch {
                algorithm, actual, ..
            }) => {
                assert_eq!(
                    (algorithm.as_str(), actual.as_str()),
                    ("crc32c", "0000abcd")
                )
            }
            r => panic!("{r:?}"),
        }
        // hash=False: nothing is compared
        spec.hash = false;
        assert!(verify(&spec, &d, 20).unwrap().is_empty());
    }

    #[test]
    fn crc64nvme_is_computed_only_when_expected_and_then_checked() {
        let mut spec = TransferSpec {
            hash: true,
            ..Default::default()
        };
        let w = wanted(&spec, Some(9)).unwrap();
        assert!(!w.crc64nvme);
        assert!(w.sha256, "nothing else proves the bytes: sha256 of record");
        spec.crc64nvme = Some("ae8b14860a799888".into());
        let w = wanted(&spec, Some(9)).unwrap();
        assert!(w.crc64nvme);
        assert!(
            !w.sha256,
            "the crc64nvme proves the bytes: no sha256 on top"
        );
        assert!(!w.md5 && w.md5_part_size.is_none());
        let d = DigestHex {
            crc64nvme: Some("ae8b14860a799888".into()),
            ..Default::default()
        };
        assert_eq!(verify(&spec, &d, 9).unwrap(), ["crc64nvme"]);
        let other = DigestHex {
            crc64nvme: Some("0000000000000001".into()),
            ..Default::default()
        };
        match verify(&spec, &other, 9) {
            Err(Error::ChecksumMismatch {
                algorithm,
                expected,
                actual,
            }) => assert_eq!(
                (algorithm.as_str(), expected.as_str(), actual.as_str()),
                ("crc64nvme", "ae8b14860a799888", "0000000000000001")
            ),
            r => panic!("{r:?}"),
        }
    }
}
