//! The media store (issue #31 §2, in part): fetched items kept under `state_dir/media` by their SHA-256 (the same
//! bytes stored once), reached only through URLs signed with a key kept beside them (HMAC-SHA256 over the hash and
//! an expiry), and bounded: what is older than `keep`, then the least recently used past `max_bytes`, is removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::fetch::Fetched;

/// The key's file, inside the store's directory (readable by the daemon's user only).
const KEY_FILE: &str = "media.key";

/// An item in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The SHA-256 of its bytes, in hex: its name in the store and in its URL.
    pub id: String,
    pub size: u64,
    pub mime: String,
}

pub struct MediaStore {
    dir: PathBuf,
    key: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl MediaStore {
    /// Opens the store in `dir`, making it and its key on first use.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let path = dir.join(KEY_FILE);
        let key = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            _ => {
                // Two v4 uuids: 244 random bits from the system's generator.
                let mut key = [0u8; 32];
                key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                let mut file =
                    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
                std::io::Write::write_all(&mut file, &key)?;
                key
            }
        };
        Ok(Self { dir: dir.to_owned(), key })
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Keeps a fetched item under its hash (once: the same bytes again only touch the one kept).
    pub fn put(&self, fetched: Fetched) -> std::io::Result<Stored> {
        let id = hex(&fetched.sha256);
        let path = self.path_of(&id);
        if path.exists() {
            std::fs::remove_file(&fetched.path)?;
            touch(&path)?;
        } else {
            std::fs::rename(&fetched.path, &path)?;
            std::fs::write(self.dir.join(format!("{id}.type")), fetched.mime)?;
        }
        Ok(Stored { id, size: fetched.size, mime: fetched.mime.to_owned() })
    }

    /// An item by its id, with its type, when the store has it (and its use is noted).
    pub fn get(&self, id: &str) -> Option<(PathBuf, String)> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let path = self.path_of(id);
        let mime = std::fs::read_to_string(self.dir.join(format!("{id}.type"))).ok()?;
        touch(&path).ok()?;
        Some((path, mime))
    }

    fn signature(&self, id: &str, expires: u64) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{id}:{expires}").as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// The path and query of a signed URL for `id`, valid for `ttl` from `now`: `/media/<id>?e=<expiry>&s=<sig>`.
    pub fn signed_path(&self, id: &str, now: SystemTime, ttl: Duration) -> String {
        let expires = unix(now + ttl);
        format!("/media/{id}?e={expires}&s={}", self.signature(id, expires))
    }

    /// Whether `signature` is this store's for `id` and `expires`, and `expires` has not passed at `now`.
    pub fn verify(&self, id: &str, expires: u64, signature: &str, now: SystemTime) -> bool {
        let expected = self.signature(id, expires);
        let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()).into();
        same && unix(now) <= expires
    }

    /// Removes what was last used before `now - keep`, then the least recently used until the items take at most
    /// `max_bytes`. Returns how many items went.
    pub fn evict(&self, now: SystemTime, keep: Duration, max_bytes: u64) -> std::io::Result<usize> {
        let mut items: Vec<(SystemTime, u64, String)> = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let meta = entry.metadata()?;
            items.push((meta.modified()?, meta.len(), name));
        }
        items.sort();
        let mut total: u64 = items.iter().map(|(_, size, _)| size).sum();
        let mut removed = 0;
        for (used, size, id) in items {
            let stale = now.duration_since(used).is_ok_and(|age| age > keep);
            if !stale && total <= max_bytes {
                break;
            }
            std::fs::remove_file(self.path_of(&id))?;
            let _ = std::fs::remove_file(self.dir.join(format!("{id}.type")));
            total -= size;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Notes a use: the item's modification time is when it was last stored or served.
fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::options().append(true).open(path)?.set_modified(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(dir: &Path, bytes: &[u8]) -> Fetched {
        use sha2::Digest;
        let path = dir.join(format!(".fetching-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, bytes).unwrap();
        Fetched { path, size: bytes.len() as u64, sha256: Sha256::digest(bytes).into(), mime: "image/png" }
    }

    #[test]
    fn the_same_bytes_are_kept_once_and_found_by_their_hash() {
        let dir = std::env::temp_dir().join(format!("chatbridge-store-{}", uuid::Uuid::new_v4()));
        let store = MediaStore::open(&dir).unwrap();
        let one = store.put(fetched(&dir, b"picture")).unwrap();
        let two = store.put(fetched(&dir, b"picture")).unwrap();
        assert_eq!(one, two);
        let kept: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(kept.len(), 3, "the item, its type and the key: {kept:?}");
        let (path, mime) = store.get(&one.id).unwrap();
        assert_eq!((std::fs::read(path).unwrap(), mime.as_str()), (b"picture".to_vec(), "image/png"));
        assert!(store.get("../media.key").is_none() && store.get(&"0".repeat(64)).is_none());
        // The key is kept: a store opened again signs alike.
        let again = MediaStore::open(&dir).unwrap();
        let now = SystemTime::now();
        assert_eq!(
            store.signed_path(&one.id, now, Duration::from_secs(60)),
            again.signed_path(&one.id, now, Duration::from_secs(60))
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn signatures_hold_for_their_item_until_they_expire() {
        let dir = std::env::temp_dir().join(format!("chatbridge-store-{}", uuid::Uuid::new_v4()));
        let store = MediaStore::open(&dir).unwrap();
        let id = "ab".repeat(32);
        let now = SystemTime::now();
        let path = store.signed_path(&id, now, Duration::from_secs(3600));
        let (_, query) = path.split_once('?').unwrap();
        let expires: u64 = query.split('&').find_map(|p| p.strip_prefix("e=")).unwrap().parse().unwrap();
        let signature = query.split('&').find_map(|p| p.strip_prefix("s=")).unwrap();
        assert!(store.verify(&id, expires, signature, now));
        assert!(!store.verify(&id, expires + 1, signature, now), "a longer expiry is not signed");
        assert!(!store.verify(&"cd".repeat(32), expires, signature, now), "another item is not signed");
        // One hex digit changed (always a change, whatever the signature).
        let first = if signature.starts_with('0') { "1" } else { "0" };
        let tampered = format!("{first}{}", &signature[1..]);
        assert!(!store.verify(&id, expires, &tampered, now), "tampered");
        assert!(!store.verify(&id, expires, signature, now + Duration::from_secs(3601)), "expired");
        let other = MediaStore::open(&dir.join("other")).unwrap();
        assert!(!other.verify(&id, expires, signature, now), "another store's key");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_old_and_then_the_least_used_go_first() {
        let dir = std::env::temp_dir().join(format!("chatbridge-store-{}", uuid::Uuid::new_v4()));
        let store = MediaStore::open(&dir).unwrap();
        let items: Vec<Stored> = (0..4).map(|n| store.put(fetched(&dir, &vec![n; 1000])).unwrap()).collect();
        let now = SystemTime::now();
        let at = |id: &str, ago: u64| {
            std::fs::File::options()
                .append(true)
                .open(dir.join(id))
                .unwrap()
                .set_modified(now - Duration::from_secs(ago))
                .unwrap()
        };
        at(&items[0].id, 40 * 86_400);
        at(&items[1].id, 300);
        at(&items[2].id, 200);
        at(&items[3].id, 100);
        // Older than 30 days: the first goes; then within 2,000 bytes: the least recently used of the rest.
        assert_eq!(store.evict(now, Duration::from_secs(30 * 86_400), 2000).unwrap(), 2);
        assert!(store.get(&items[0].id).is_none() && store.get(&items[1].id).is_none());
        assert!(store.get(&items[2].id).is_some() && store.get(&items[3].id).is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
