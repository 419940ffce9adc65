//! Media sent as Yunhu's own (issue #31 §3). An item of the media store is uploaded the way Yunhu's clients upload
//! (the public clients named in docs/platforms/yunhu.md#media): a Qiniu upload token from the Yunhu API (`GET
//! /v1/misc/qiniu-token` for images, `qiniu-token-video`, `qiniu-token-audio`, `qiniu-token2` for files; header
//! `token`; answer `{"code":1,"data":{"token":"…"}}`), then a multipart POST of `token`, `key` and `file` to the
//! upload host (answer `{"key":"…","hash":"…"}`), the key being the file's MD5 and extension (`disk/` before it for
//! a file). The message then names the key: content type 2 (`image`), 4 (`file_key`, `file_name`, `file_size`),
//! 10 (`video`) or 11 (`audio`), with `media` (seed 004's send schema).

use std::time::Duration;

use md5::Digest;
use tokio::io::AsyncReadExt;

use super::Shared;
use super::proto::{SendContent, SendMedia};
use crate::adapters::SendFailure;
use crate::adapters::retry::{describe, read_body};
use crate::link::MediaFile;

/// An upload may take longer than a request: 20 MB at a modest pace.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest answer read from the token route or the upload host.
const MAX_ANSWER: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Image,
    Video,
    Audio,
    File,
}

impl Kind {
    fn token_route(self) -> &'static str {
        match self {
            Kind::Image => "/v1/misc/qiniu-token",
            Kind::Video => "/v1/misc/qiniu-token-video",
            Kind::Audio => "/v1/misc/qiniu-token-audio",
            Kind::File => "/v1/misc/qiniu-token2",
        }
    }

    /// The message's `content_type`.
    pub(super) fn content_type(self) -> u64 {
        match self {
            Kind::Image => 2,
            Kind::File => 4,
            Kind::Video => 10,
            Kind::Audio => 11,
        }
    }
}

/// The extension a sniffed type is stored under.
fn suffix(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/bmp" => "bmp",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/wav" => "wav",
        "audio/amr" => "amr",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/gzip" => "gz",
        _ => "bin",
    }
}

/// Uploads `file` and returns the message's content and media parts naming it.
pub(super) async fn upload(
    shared: &Shared,
    file: &MediaFile,
    kind: Kind,
    name: Option<&str>,
    seconds: Option<u32>,
) -> Result<(SendContent, Option<SendMedia>), SendFailure> {
    let token = upload_token(shared, kind).await?;
    let md5 = md5_of(file).await.map_err(|e| transient(format!("the media file cannot be read: {e}")))?;
    let suffix = suffix(&file.mime);
    let key = match kind {
        Kind::File => format!("disk/{md5}.{suffix}"),
        _ => format!("{md5}.{suffix}"),
    };
    let name = name.map_or_else(|| format!("{md5}.{suffix}"), str::to_owned);
    let opened = tokio::fs::File::open(&file.path)
        .await
        .map_err(|e| transient(format!("the media file cannot be read: {e}")))?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(opened));
    let part = reqwest::multipart::Part::stream_with_length(body, file.size)
        .file_name(name.clone())
        .mime_str(&file.mime)
        .map_err(|e| transient(format!("the media type cannot be sent: {e}")))?;
    // Qiniu wants `token` and `key` before the file.
    let form = reqwest::multipart::Form::new().text("token", token).text("key", key.clone()).part("file", part);
    let response = shared
        .http
        .post(shared.config.upload_url.clone())
        .multipart(form)
        .timeout(UPLOAD_TIMEOUT.max(shared.config.request_timeout))
        .send()
        .await
        .map_err(|e| transient(format!("the upload failed: {}", describe(e))))?;
    let status = response.status();
    let answer = read_body(response, MAX_ANSWER).await.map_err(|e| transient(format!("the upload: {e}")))?;
    if !status.is_success() {
        return Err(transient(format!("the upload host answered {status}")));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|_| transient("the upload host's answer is not JSON".into()))?;
    let key = answer.get("key").and_then(|k| k.as_str()).unwrap_or(&key).to_owned();
    let hash = answer.get("hash").and_then(|h| h.as_str()).unwrap_or_default().to_owned();
    Ok(message_parts(kind, &key, &hash, file, name, seconds))
}

/// The message's content and media naming an uploaded item (seed 004: `image` 9, `file_name` 4, `file_key` 5,
/// `file_size` 18, `video` 19, `audio` 21, `audio_time` 22; `media` 9 for an image, video or voice).
pub(super) fn message_parts(
    kind: Kind,
    key: &str,
    hash: &str,
    file: &MediaFile,
    name: String,
    seconds: Option<u32>,
) -> (SendContent, Option<SendMedia>) {
    let suffix = suffix(&file.mime);
    let media = SendMedia {
        file_key: key.to_owned(),
        file_hash: hash.to_owned(),
        file_type: file.mime.clone(),
        file_size: file.size,
        file_key2: key.to_owned(),
        file_suffix: suffix.to_owned(),
        ..SendMedia::default()
    };
    let key = key.to_owned();
    let content = match kind {
        Kind::Image => SendContent { image: key, ..SendContent::default() },
        Kind::Video => SendContent { video: key, ..SendContent::default() },
        Kind::Audio => SendContent { audio: key, audio_time: seconds.unwrap_or(0).into(), ..SendContent::default() },
        Kind::File => {
            return (
                SendContent { file_key: key, file_name: name, file_size: file.size, ..SendContent::default() },
                None,
            );
        }
    };
    (content, Some(media))
}

fn transient(reason: String) -> SendFailure {
    SendFailure::Transient { after: None, reason }
}

/// The upload token for `kind`, from the Yunhu API.
async fn upload_token(shared: &Shared, kind: Kind) -> Result<String, SendFailure> {
    let response = shared
        .http
        .get(shared.url(kind.token_route()))
        .header("token", shared.token_header())
        .send()
        .await
        .map_err(|e| transient(format!("the upload token: {}", describe(e))))?;
    let status = response.status();
    let body = read_body(response, MAX_ANSWER).await.map_err(|e| transient(format!("the upload token: {e}")))?;
    if !status.is_success() {
        return Err(transient(format!("{} answered {status}", kind.token_route())));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| transient("the upload token's answer is not JSON".into()))?;
    token_of(&answer)
}

/// The token of the token route's answer (`data.token`, or `data` itself as some clients read it).
pub(super) fn token_of(answer: &serde_json::Value) -> Result<String, SendFailure> {
    let data = answer.get("data");
    let token = data.and_then(|d| d.get("token")).or(data).and_then(|t| t.as_str()).filter(|t| !t.is_empty());
    match (answer.get("code").and_then(|c| c.as_i64()), token) {
        (Some(1), Some(token)) => Ok(token.to_owned()),
        _ => Err(SendFailure::Rejected {
            reason: format!(
                "no upload token: {}",
                answer.get("msg").and_then(|m| m.as_str()).unwrap_or("the answer has none")
            ),
        }),
    }
}

/// The file's MD5 in hex, read in pieces.
async fn md5_of(file: &MediaFile) -> std::io::Result<String> {
    let mut reader = tokio::fs::File::open(&file.path).await?;
    let mut hash = md5::Md5::new();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
