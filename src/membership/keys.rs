//! The gossip keyring, read from `cluster.secret_file`.
//!
//! The file holds one or more keys, one per line, each 32 random bytes in standard base64
//! (`head -c 32 /dev/urandom | base64`). Blank lines and lines starting with `#` are ignored.
//! The first key encrypts what this node sends; every key is accepted on receipt. Rotation is
//! therefore: add the new key as a second line on every node, then move it to the first line
//! on every node, then remove the old one — at no point do two nodes stop understanding each
//! other.
//!
//! Key material never appears in `Debug` output, errors or logs: keys are named by their
//! [`KeyId`] (a hash prefix, also sent in every packet so the receiver picks the right key).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Length of a gossip key, in bytes.
pub const KEY_LEN: usize = 32;

/// Names a key without revealing it: the first 4 bytes of
/// `SHA-256("ferrolb gossip key id v1" || key)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One 256-bit cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    bytes: [u8; KEY_LEN],
    id: KeyId,
}

impl Key {
    /// A key from its raw bytes.
    pub fn new(bytes: [u8; KEY_LEN]) -> Key {
        let mut h = Sha256::new();
        h.update(b"ferrolb gossip key id v1");
        h.update(bytes);
        let d = h.finalize();
        Key {
            bytes,
            id: KeyId([d[0], d[1], d[2], d[3]]),
        }
    }

    /// The key's public name.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The secret bytes (for the AEAD only).
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// The keys of `cluster.secret_file`: the first sends, all are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// Why a key file cannot be used. Messages name the file and line, never the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read the gossip key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not base64.
    #[error("{}:{line}: not a base64 key; each line must hold 32 random bytes in base64, as made by `head -c 32 /dev/urandom | base64`", path.display())]
    NotBase64 {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A line decodes to the wrong number of bytes.
    #[error("{}:{line}: the key is {len} bytes long; a gossip key is exactly 32 bytes (44 base64 characters)", path.display())]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Decoded length.
        len: usize,
    },
    /// The same key twice.
    #[error("{}:{line}: the same key as line {first}; remove one of them", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the repeat.
        line: usize,
        /// 1-based line number of the first occurrence.
        first: usize,
    },
    /// Gossip is encrypted but no key file is configured.
    #[error(
        "cluster.secret_file is not set: gossip must be encrypted (or set cluster.insecure = true)"
    )]
    NotConfigured,
    /// No key at all.
    #[error("{}: holds no key (only blank lines or comments); put a base64 key on the first line, from `head -c 32 /dev/urandom | base64`", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Keyring {
    /// A keyring from keys in order (the first sends); `None` if `keys` is empty.
    pub fn new(keys: Vec<Key>) -> Option<Keyring> {
        (!keys.is_empty()).then_some(Keyring { keys })
    }

    /// Reads and parses a key file.
    pub fn load(path: &Path) -> Result<Keyring, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Keyring::parse(path, &text)
    }

    /// Parses the contents of a key file; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Keyring, KeyError> {
        let mut keys: Vec<(usize, Key)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|_| KeyError::NotBase64 {
                    path: path.to_path_buf(),
                    line,
                })?;
            let bytes: [u8; KEY_LEN] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::WrongLength {
                        path: path.to_path_buf(),
                        line,
                        len: bytes.len(),
                    })?;
            let key = Key::new(bytes);
            if let Some((first, _)) = keys.iter().find(|(_, k)| *k == key) {
                return Err(KeyError::Duplicate {
                    path: path.to_path_buf(),
                    line,
                    first: *first,
                });
            }
            keys.push((line, key));
        }
        Keyring::new(keys.into_iter().map(|(_, k)| k).collect()).ok_or_else(|| KeyError::Empty {
            path: path.to_path_buf(),
        })
    }

    /// The key this node encrypts with (the file's first).
    pub fn primary(&self) -> &Key {
        // `new` refuses an empty list.
        &self.keys[0]
    }

    /// Every key named `id` (normally at most one; ids are 32-bit hashes).
    pub fn with_id(&self, id: KeyId) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.id == id)
    }

    /// All keys, the sending one first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn first_key_sends_all_are_accepted() {
        let text = format!(
            "# rotated in March\n\n{}\n  {}  \n",
            b64(&[1; 32]),
            b64(&[2; 32])
        );
        let ring = Keyring::parse(Path::new("/k"), &text).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert_eq!(ring.primary(), &Key::new([1; 32]));
        let id2 = Key::new([2; 32]).id();
        assert_eq!(ring.with_id(id2).count(), 1);
        assert_ne!(ring.primary().id(), id2);
    }

    #[test]
    fn errors_name_file_and_line_never_the_key() {
        let p = Path::new("/etc/ferrolb/gossip.key");
        let e = Keyring::parse(p, "# c\nnot base64!\n").unwrap_err();
        assert!(matches!(e, KeyError::NotBase64 { line: 2, .. }), "{e}");
        assert!(
            e.to_string().starts_with("/etc/ferrolb/gossip.key:2: "),
            "{e}"
        );

        let short = b64(&[7; 16]);
        let e = Keyring::parse(p, &format!("{}\n{short}\n", b64(&[1; 32]))).unwrap_err();
        assert!(
            matches!(
                e,
                KeyError::WrongLength {
                    line: 2,
                    len: 16,
                    ..
                }
            ),
            "{e}"
        );
        assert!(!e.to_string().contains(&short), "{e}");

        let k = b64(&[3; 32]);
        let e = Keyring::parse(p, &format!("{k}\n\n{k}\n")).unwrap_err();
        assert!(
            matches!(
                e,
                KeyError::Duplicate {
                    line: 3,
                    first: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(!e.to_string().contains(&k));

        let e = Keyring::parse(p, "# only a comment\n\n").unwrap_err();
        assert!(matches!(e, KeyError::Empty { .. }), "{e}");

        let e = Keyring::load(Path::new("/nonexistent/ferrolb-test.key")).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/ferrolb-test.key"),
            "{e}"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let ring = Keyring::new(vec![Key::new([0xAB; 32])]).unwrap();
        let shown = format!("{ring:?}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(shown.contains(&ring.primary().id().to_string()));
    }
}
