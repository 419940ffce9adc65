//! One media item fetched: through the guard (guard.rs), streamed to a file as it arrives (never whole in memory),
//! within a size cap checked on the bytes themselves whatever `Content-Length` says, a total deadline, and a limit
//! on fetches at once; its type sniffed from its first bytes, and refused when it is not the kind the platform
//! said. What cannot be fetched says why in a few words, for the note that goes with the message's link.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::guard::{FetchError, Guard, Trusted};

/// What a platform says an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Image,
    Video,
    Audio,
    /// Anything: a file is what it is.
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
            Kind::Audio => "audio",
            Kind::File => "file",
        }
    }
}

/// The fetcher's bounds (`[media]`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes one item may have.
    pub max_size: u64,
    pub connect: Duration,
    pub total: Duration,
    /// Fetches at once.
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_size: 20 << 20, connect: Duration::from_secs(10), total: Duration::from_secs(60), concurrency: 4 }
    }
}

/// An item on disk: where, how large, its SHA-256, its sniffed type.
#[derive(Debug)]
pub struct Fetched {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
    pub mime: &'static str,
}

/// Why an item was not fetched, as the note beside its link says it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Past the cap; the size the server declared, when it did.
    #[error("too large")]
    TooLarge(Option<u64>),
    #[error("refused")]
    Refused,
    #[error("timed out")]
    TimedOut,
    #[error("not {}", article(.0))]
    NotWhatItClaims(&'static str),
    #[error("answered {0}")]
    Status(u16),
    #[error("unreachable")]
    Unreachable,
    #[error("not stored")]
    Disk,
}

/// `an image`, `a video`, `audio`.
fn article(kind: &str) -> String {
    match kind {
        "image" => "an image".to_owned(),
        "audio" => "audio".to_owned(),
        other => format!("a {other}"),
    }
}

impl Failure {
    /// The `/metrics` label.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::TooLarge(_) => "too_large",
            Failure::Refused => "refused",
            Failure::TimedOut => "timed_out",
            Failure::NotWhatItClaims(_) => "not_what_it_claims",
            Failure::Status(_) => "status",
            Failure::Unreachable => "unreachable",
            Failure::Disk => "disk",
        }
    }
}

pub struct Fetcher {
    guard: Guard,
    limits: Limits,
    permits: Arc<Semaphore>,
    dir: PathBuf,
}

impl Fetcher {
    /// Fetches into `dir` (made if missing).
    pub fn new(trusted: Trusted, limits: Limits, dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            guard: Guard::new(trusted, limits.connect, limits.total),
            limits,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            dir: dir.to_owned(),
        })
    }

    /// Fetches `url`, said to be a `kind`, within the limits; a file in the fetcher's directory, or why not.
    pub async fn fetch(&self, url: &Url, kind: Kind) -> Result<Fetched, Failure> {
        let _permit = self.permits.acquire().await.map_err(|_| Failure::Unreachable)?;
        match tokio::time::timeout(self.limits.total, self.fetch_now(url, kind)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::TimedOut),
        }
    }

    async fn fetch_now(&self, url: &Url, kind: Kind) -> Result<Fetched, Failure> {
        let mut response = self.guard.get(url).await.map_err(|e| match e {
            FetchError::Refused(_) | FetchError::Redirect(_) | FetchError::NotPublic(_) => Failure::Refused,
            FetchError::TimedOut => Failure::TimedOut,
            FetchError::Request(_) => Failure::Unreachable,
        })?;
        if !response.status().is_success() {
            return Err(Failure::Status(response.status().as_u16()));
        }
        // A declared length past the cap is refused before a byte is read; a smaller one is not believed.
        if let Some(declared) = response.content_length().filter(|n| *n > self.limits.max_size) {
            return Err(Failure::TooLarge(Some(declared)));
        }
        let path = self.dir.join(format!(".fetching-{}", uuid::Uuid::new_v4()));
        // Removed unless the fetch succeeds — also when the total deadline drops this future mid-stream.
        let partial = Partial(Some(path.clone()));
        let (size, sha256, mime) = self.stream(&mut response, &path, kind).await?;
        partial.keep();
        Ok(Fetched { path, size, sha256, mime })
    }

    async fn stream(
        &self,
        response: &mut reqwest::Response,
        path: &Path,
        kind: Kind,
    ) -> Result<(u64, [u8; 32], &'static str), Failure> {
        let mut file = tokio::fs::File::create(path).await.map_err(|_| Failure::Disk)?;
        let mut hash = sha2::Sha256::new();
        let mut size = 0u64;
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF);
        while let Some(chunk) =
            response.chunk().await.map_err(|e| if e.is_timeout() { Failure::TimedOut } else { Failure::Unreachable })?
        {
            size += chunk.len() as u64;
            if size > self.limits.max_size {
                return Err(Failure::TooLarge(None));
            }
            if head.len() < SNIFF {
                let take = (SNIFF - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                // Known as soon as the first bytes are: a page served as an image stops here.
                if head.len() == SNIFF && !fits(kind, sniff(&head)) {
                    return Err(Failure::NotWhatItClaims(kind.as_str()));
                }
            }
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(|_| Failure::Disk)?;
        }
        let mime = sniff(&head);
        if !fits(kind, mime) {
            return Err(Failure::NotWhatItClaims(kind.as_str()));
        }
        file.flush().await.map_err(|_| Failure::Disk)?;
        Ok((size, hash.finalize().into(), mime))
    }
}

/// A file being fetched: removed when dropped, unless kept.
struct Partial(Option<PathBuf>);

impl Partial {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Bytes looked at to tell a type.
const SNIFF: usize = 16;

/// The type the first bytes say (a few signatures of each kind; anything else is `application/octet-stream`, and
/// markup that a browser would run is named as such).
pub fn sniff(head: &[u8]) -> &'static str {
    let starts = |magic: &[u8]| head.starts_with(magic);
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "image/gif"
    } else if starts(b"RIFF") && at(8, b"WEBP") {
        "image/webp"
    } else if starts(b"BM") {
        "image/bmp"
    } else if at(4, b"ftyp") {
        "video/mp4"
    } else if starts(b"\x1a\x45\xdf\xa3") {
        "video/webm"
    } else if starts(b"OggS") {
        "audio/ogg"
    } else if starts(b"ID3") || (head.len() > 1 && head[0] == 0xff && head[1] & 0xe0 == 0xe0) {
        "audio/mpeg"
    } else if starts(b"RIFF") && at(8, b"WAVE") {
        "audio/wav"
    } else if starts(b"#!AMR") {
        "audio/amr"
    } else if starts(b"%PDF-") {
        "application/pdf"
    } else if starts(b"PK\x03\x04") {
        "application/zip"
    } else if starts(b"\x1f\x8b") {
        "application/gzip"
    } else if looks_like_markup(head) {
        "text/html"
    } else {
        "application/octet-stream"
    }
}

fn looks_like_markup(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).trim_start().to_ascii_lowercase();
    ["<!doctype", "<html", "<svg", "<?xml", "<script", "<head", "<body"].iter().any(|tag| text.starts_with(tag))
}

/// Whether a sniffed type is of the kind the platform said.
fn fits(kind: Kind, mime: &str) -> bool {
    match kind {
        Kind::Image => mime.starts_with("image/"),
        Kind::Video => mime.starts_with("video/"),
        Kind::Audio => mime.starts_with("audio/") || mime == "video/webm" || mime == "video/mp4",
        Kind::File => true,
    }
}

#[cfg(test)]
mod tests;
