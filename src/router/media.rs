//! THE MEDIA PORT: what the router asks of the media store (issue #31) — a message's media fetched and kept
//! before the message is rendered for a room — and how each destination gets an item: natively, as the store's
//! signed link with its kind and size (`media_format`), or, when it could not be fetched, as its original link
//! with a short note. The `media` module implements the port; the router never names it.
//!
//! A room whose next message has media not yet known waits (as it waits for an acknowledgement) until the port
//! says the item is known, on its channel: the room's order is kept, and a slow media host delays only the rooms
//! whose next message needs it, for at most the fetch's total deadline.

use std::sync::Arc;

use crate::model::{Capabilities, EventKind, Segment};
use crate::template::{MediaVars, Template};

/// What a platform says an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    File,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::File => "file",
        }
    }
}

/// An item in the store (the contract's form: a destination that uploads it reads its file).
pub use crate::link::MediaFile as StoredMedia;

/// What became of an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    Stored(Arc<StoredMedia>),
    /// Not fetched: the note says why in a few words (`38 MB: too large`); the original link goes on.
    Failed {
        note: String,
    },
}

/// The media store, as the router sees it.
pub trait MediaPort: Send {
    /// What became of `url`, when it is known. Otherwise its fetch is started (once, however many rooms ask), and
    /// `url` comes back on the port's channel once it is known.
    fn resolve(&mut self, url: &str, kind: MediaKind) -> Option<Resolution>;
}

/// A message's media items, resolved, for rendering.
pub type Resolved = Vec<(String, Resolution)>;

/// The items a platform marked as media in an event: its URL and kind, each once.
pub fn media_of(kind: &EventKind) -> Vec<(String, MediaKind)> {
    let (content, quoted) = match kind {
        EventKind::Message(message) => (&message.content, message.reply.as_ref().and_then(|r| r.quoted_image.as_ref())),
        EventKind::Edited { content, .. } => (content, None),
        _ => return Vec::new(),
    };
    let mut out: Vec<(String, MediaKind)> = Vec::new();
    if let Some(url) = quoted {
        out.push((url.clone(), MediaKind::Image));
    }
    for segment in &content.0 {
        if let Some((url, kind)) = item(segment)
            && !out.iter().any(|(u, _)| u == url)
        {
            out.push((url.to_owned(), kind));
        }
    }
    out
}

/// The URL and kind of a media segment.
pub fn item(segment: &Segment) -> Option<(&str, MediaKind)> {
    match segment {
        Segment::Image { url } | Segment::Sticker { url, .. } => Some((url, MediaKind::Image)),
        Segment::Video { url } => Some((url, MediaKind::Video)),
        Segment::Audio { url, .. } => Some((url, MediaKind::Audio)),
        Segment::File { url, .. } => Some((url, MediaKind::File)),
        _ => None,
    }
}

/// `1.2 MB`, `640 KB`, `12 B` (decimal units, as the platforms state their limits).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value < 10.0 { format!("{value:.1} {}", UNITS[unit]) } else { format!("{value:.0} {}", UNITS[unit]) }
}

/// One media segment for one destination, once its item is resolved: the segment on the store's address where
/// the destination shows the kind natively (an image only over https where the platform shows only those), the
/// room's `media_format` where it does not, the original link and a note where the item could not be fetched.
pub fn render_item(segment: &Segment, resolution: &Resolution, caps: Capabilities, format: &Template) -> Segment {
    let Some((original, kind)) = item(segment) else { return segment.clone() };
    let name = match segment {
        Segment::File { name: Some(name), .. } => name.as_str(),
        _ => kind.as_str(),
    };
    match resolution {
        Resolution::Failed { note } => {
            let label =
                if name == kind.as_str() { kind.as_str().to_owned() } else { format!("{} {name}", kind.as_str()) };
            Segment::Text(format!("[{label}, {note}] {original}"))
        }
        Resolution::Stored(stored) => {
            let native = match kind {
                MediaKind::Image => caps.media.image && (!caps.media.https_only || stored.url.starts_with("https://")),
                MediaKind::Video => caps.media.video,
                MediaKind::Audio => caps.media.audio,
                MediaKind::File => caps.media.file,
            };
            let url = stored.url.clone();
            if native {
                return match segment {
                    Segment::Audio { seconds, .. } => Segment::Audio { url, seconds: *seconds },
                    Segment::Video { .. } => Segment::Video { url },
                    Segment::File { name, .. } => Segment::File { url, name: name.clone(), size: Some(stored.size) },
                    _ => Segment::Image { url },
                };
            }
            let size = human_size(stored.size);
            Segment::Text(format.render_media(&MediaVars { kind: kind.as_str(), size: &size, url: &url, name }))
        }
    }
}

/// The API's attachments, in matterbridge's `Extra.file` shape: one entry per item in the store.
pub fn extra_files(segments: &[Segment], resolved: &Resolved) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for segment in segments {
        let Some((url, kind)) = item(segment) else { continue };
        let Some((_, Resolution::Stored(stored))) = resolved.iter().find(|(u, _)| u == url) else { continue };
        let name = match segment {
            Segment::File { name: Some(name), .. } => name.clone(),
            _ => format!("{}{}", &stored.sha256[..12.min(stored.sha256.len())], extension(&stored.mime, kind)),
        };
        out.push(serde_json::json!({
            "Name": name,
            "Data": null,
            "Comment": "",
            "URL": stored.url,
            "Size": stored.size,
            "Avatar": false,
            "SHA": stored.sha256,
        }));
    }
    out
}

/// A name's extension for a sniffed type.
fn extension(mime: &str, kind: MediaKind) -> &'static str {
    match mime {
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        "image/webp" => ".webp",
        "image/bmp" => ".bmp",
        "video/mp4" => ".mp4",
        "video/webm" => ".webm",
        "audio/ogg" => ".ogg",
        "audio/mpeg" => ".mp3",
        "audio/wav" => ".wav",
        "audio/amr" => ".amr",
        "application/pdf" => ".pdf",
        "application/zip" => ".zip",
        _ if kind == MediaKind::File => "",
        _ => ".bin",
    }
}

impl super::Router {
    /// Media are fetched into `port`'s store before messages with media are rendered; `known` says which items
    /// have come to be known since asked for.
    pub fn with_media(&mut self, port: Box<dyn MediaPort>, known: tokio::sync::mpsc::UnboundedReceiver<String>) {
        self.media = Some((port, known));
    }

    /// The front message's media, resolved; `None` while some are still being fetched (the room then waits for
    /// them, and is pumped again when they are known).
    pub(super) fn media_for(&mut self, room: &crate::model::RoomAddr) -> Option<Resolved> {
        let Some((port, _)) = self.media.as_mut() else { return Some(Vec::new()) };
        let Some(front) = self.outbox.peek(room, 0) else { return Some(Vec::new()) };
        let items = media_of(&front.event.kind);
        let mut resolved = Vec::with_capacity(items.len());
        let mut waiting = false;
        for (url, kind) in items {
            match port.resolve(&url, kind) {
                Some(resolution) => resolved.push((url, resolution)),
                None => {
                    let rooms = self.media_waits.entry(url).or_default();
                    if !rooms.contains(room) {
                        rooms.push(room.clone());
                    }
                    waiting = true;
                }
            }
        }
        if waiting {
            tracing::trace!(room = %room, "Waiting for the next message's media.");
            self.rooms.entry(room.clone()).or_default().media_wait = true;
            return None;
        }
        Some(resolved)
    }

    /// An item is known: the rooms that waited for it go on.
    pub(super) fn media_known(&mut self, url: &str) {
        for room in self.media_waits.remove(url).unwrap_or_default() {
            if let Some(state) = self.rooms.get_mut(&room) {
                state.media_wait = false;
            }
            self.pump(&room);
        }
    }
}

/// The next item the media store has come to know (never, without one).
pub(super) async fn next_known(
    media: &mut Option<(Box<dyn MediaPort>, tokio::sync::mpsc::UnboundedReceiver<String>)>,
) -> Option<String> {
    match media {
        Some((_, known)) => known.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MediaKinds;
    use std::path::PathBuf;

    fn stored(url: &str) -> Resolution {
        Resolution::Stored(Arc::new(StoredMedia {
            url: url.into(),
            size: 1_234_567,
            mime: "image/png".into(),
            sha256: "ab".repeat(32),
            path: PathBuf::from("/tmp/x"),
        }))
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(1_234_567), "1.2 MB");
        assert_eq!(human_size(38_000_000), "38 MB");
        assert_eq!(human_size(640_000), "640 KB");
    }

    #[test]
    fn each_destination_gets_its_form() {
        let format = Template::parse_media("[{kind} {size}] {url}").unwrap();
        let image = Segment::Image { url: "https://src/cat.png".into() };
        let links = Capabilities::default();
        assert_eq!(
            render_item(&image, &stored("https://m/media/x"), links, &format),
            Segment::Text("[image 1.2 MB] https://m/media/x".into())
        );
        let images = Capabilities { media: MediaKinds { image: true, ..MediaKinds::default() }, ..links };
        assert_eq!(
            render_item(&image, &stored("https://m/media/x"), images, &format),
            Segment::Image { url: "https://m/media/x".into() }
        );
        let https_only = Capabilities { media: MediaKinds { https_only: true, ..images.media }, ..links };
        assert_eq!(
            render_item(&image, &stored("http://m/media/x"), https_only, &format),
            Segment::Text("[image 1.2 MB] http://m/media/x".into()),
            "an image the platform would not show goes as a link"
        );
        let failed = Resolution::Failed { note: "38 MB: too large".into() };
        assert_eq!(
            render_item(&image, &failed, images, &format),
            Segment::Text("[image, 38 MB: too large] https://src/cat.png".into())
        );
        let file = Segment::File { url: "https://src/a.pdf".into(), name: Some("a.pdf".into()), size: None };
        assert_eq!(
            render_item(&file, &failed, links, &format),
            Segment::Text("[file a.pdf, 38 MB: too large] https://src/a.pdf".into())
        );
    }

    #[test]
    fn the_api_gets_matterbridge_attachments() {
        let image = Segment::Image { url: "https://src/cat.png".into() };
        let resolved = vec![("https://src/cat.png".to_owned(), stored("https://m/media/x"))];
        let files = extra_files(std::slice::from_ref(&image), &resolved);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0]["URL"], "https://m/media/x");
        assert_eq!(files[0]["Size"], 1_234_567);
        assert_eq!(files[0]["Name"], format!("{}.png", "ab".repeat(6)));
        assert_eq!(files[0]["SHA"], "ab".repeat(32));
    }

    #[test]
    fn media_are_listed_once() {
        let content = crate::model::Content(vec![
            Segment::Image { url: "u1".into() },
            Segment::Text("and".into()),
            Segment::Image { url: "u1".into() },
            Segment::File { url: "u2".into(), name: None, size: None },
        ]);
        let message = crate::model::Message { content, ..Default::default() };
        assert_eq!(
            media_of(&EventKind::Message(message)),
            vec![("u1".to_owned(), MediaKind::Image), ("u2".to_owned(), MediaKind::File)]
        );
    }
}
