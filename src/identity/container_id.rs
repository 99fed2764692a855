//! What a container ID looks like, and how to pick one when the evidence names several.
//!
//! Shared by every source so that the cgroup scan, mountinfo, the metadata file and the ECS endpoints
//! all accept exactly the same shapes: 64 lowercase hex (Docker, containerd, CRI-O, podman, ECS on EC2)
//! or `<32 hex>-<digits>` (Fargate; 8, 9 and 10 digits have been seen, so the count is not fixed, but
//! the number is a 32-bit decimal: at most 10 digits).

/// True for a full container ID as runtimes write it.
pub fn is_container_id(text: &str) -> bool {
    is_full_docker_id(text) || is_fargate_id(text)
}

/// 64 lowercase hex: the only form the ECS introspection API matches exactly (12 characters or fewer are
/// a prefix search there and can name another task).
pub fn is_full_docker_id(text: &str) -> bool {
    text.len() == 64 && is_lower_hex(text)
}

/// `<32 hex>-<digits>`, the Fargate platform's container ID. The suffix is a 32-bit unsigned decimal
/// (8, 9 and 10 digits have been seen), so 1 to 10 digits that fit in a `u32`; never a second dash.
fn is_fargate_id(text: &str) -> bool {
    let Some((task, suffix)) = text.split_once('-') else { return false };
    task.len() == 32
        && is_lower_hex(task)
        && (1..=10).contains(&suffix.len())
        && suffix.bytes().all(|b| b.is_ascii_digit())
        && suffix.parse::<u32>().is_ok()
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The one distinct value among `candidates`, or the one the hostname points at when there are several
/// (Docker's default hostname is the ID's first 12 characters). The hostname alone never makes an ID:
/// a user can set it to anything.
pub fn pick(candidates: &[String], hostname: Option<&str>) -> Pick {
    let mut distinct: Vec<&String> = Vec::new();
    for candidate in candidates {
        if !distinct.contains(&candidate) {
            distinct.push(candidate);
        }
    }
    match distinct.as_slice() {
        [] => Pick::None,
        [only] => Pick::One((*only).clone()),
        several => {
            let hostname = hostname.map(str::trim).filter(|h| h.len() >= 12 && is_lower_hex(h));
            let matching: Vec<&&String> = match hostname {
                Some(h) => several.iter().filter(|c| c.starts_with(h)).collect(),
                None => Vec::new(),
            };
            match matching.as_slice() {
                [only] => Pick::One((**only).clone()),
                _ => Pick::Ambiguous(several.iter().map(|s| (*s).clone()).collect()),
            }
        }
    }
}

/// The outcome of [`pick`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    None,
    One(String),
    Ambiguous(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = "3edf87da4c0e41f0c3c7b0c1a0e3c8f1e2d3c4b5a69788796a5b4c3d2e1f0a1b";

    #[test]
    fn accepts_docker_and_fargate_shapes() {
        assert!(is_container_id(DOCKER));
        assert!(is_container_id("e40860c2b55a4200b03c3197f6c59714-2886439692"));
        assert!(is_container_id("e40860c2b55a4200b03c3197f6c59714-71576537"));
        assert!(is_container_id("e40860c2b55a4200b03c3197f6c59714-123456789"));
    }

    #[test]
    fn rejects_lookalikes() {
        assert!(!is_container_id(&DOCKER[..63]));
        assert!(!is_container_id(&DOCKER.to_uppercase()));
        assert!(!is_container_id(&DOCKER[..12]));
        assert!(!is_container_id("e40860c2b55a4200b03c3197f6c59714"));
        assert!(!is_container_id("e40860c2b55a4200b03c3197f6c59714-"));
        assert!(!is_container_id("e40860c2b55a4200b03c3197f6c59714-12a"));
        // The suffix is a 32-bit decimal: 11 digits, 20 digits and 2^32 are not Fargate IDs.
        assert!(is_container_id("e40860c2b55a4200b03c3197f6c59714-4294967295"));
        assert!(!is_container_id("e40860c2b55a4200b03c3197f6c59714-4294967296"));
        assert!(!is_container_id("e40860c2b55a4200b03c3197f6c59714-28864396921"));
        assert!(!is_container_id("e40860c2b55a4200b03c3197f6c59714-12345678901234567890"));
        assert!(!is_container_id("e40860c2b55a4200b03c3197f6c59714-+123"));
        assert!(!is_container_id("3"));
        assert!(!is_container_id("pod1d2c3b4a-0000-1111-2222-333344445555"));
        assert!(!is_container_id("1d2c3b4a-0000-1111-2222-333344445555"));
    }

    #[test]
    fn hostname_breaks_a_tie_but_never_makes_an_id() {
        let other = "a".repeat(64);
        let both = vec![DOCKER.to_string(), other.clone()];
        assert_eq!(pick(&both, Some("3edf87da4c0e\n")), Pick::One(DOCKER.to_string()));
        assert_eq!(pick(&both, Some("web-1")), Pick::Ambiguous(both.clone()));
        assert_eq!(pick(&both, None), Pick::Ambiguous(both.clone()));
        assert_eq!(pick(&[], Some("3edf87da4c0e")), Pick::None);
        assert_eq!(pick(&[other.clone(), other.clone()], None), Pick::One(other));
    }
}
