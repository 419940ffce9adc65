//! What Yunhu's clients upload media through, as the public clients do it (docs/platforms/yunhu.md#media): the
//! upload-token routes of the Yunhu API (`GET /v1/misc/qiniu-token`, `-video`, `-audio`, `qiniu-token2`; header
//! `token`; `{"code":1,"data":{"token":"…"},"msg":"success"}`) and, standing in for Qiniu's upload host,
//! `POST /qiniu/upload`: a multipart form of `token`, `key` and `file` (in that order), answered
//! `{"key":"…","hash":"…"}`; the bytes are kept by key for the tests.

use axum::extract::Multipart;

use super::*;

pub(super) async fn upload_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if shared.user(&headers).is_none() {
        let body = serde_json::json!({"code": -1, "msg": "token invalid"});
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    let token = format!("sim-ak:{}:{}", uuid::Uuid::new_v4().simple(), "eyJzY29wZSI6ImNoYXQ2OCJ9");
    shared.lock().upload_tokens.push(token.clone());
    axum::Json(serde_json::json!({"code": 1, "data": {"token": token}, "msg": "success"})).into_response()
}

pub(super) async fn qiniu_upload(State(shared): State<Arc<Shared>>, mut form: Multipart) -> Response {
    let refused = |why: &str| (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": why}))).into_response();
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                match field.bytes().await {
                    Ok(bytes) => fields.push((name, bytes.to_vec())),
                    Err(_) => return refused("unreadable form"),
                }
            }
            Ok(None) => break,
            Err(_) => return refused("unreadable form"),
        }
    }
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    if names != ["token", "key", "file"] {
        return refused("expected token, key and file, in that order");
    }
    let token = String::from_utf8_lossy(&fields[0].1).into_owned();
    let key = String::from_utf8_lossy(&fields[1].1).into_owned();
    let mut inner = shared.lock();
    if !inner.upload_tokens.contains(&token) {
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "bad token"}))).into_response();
    }
    let bytes = if shared.config.discard_uploads { Vec::new() } else { std::mem::take(&mut fields[2].1) };
    let hash = format!("sim-{:x}", bytes.len());
    inner.uploads.insert(key.clone(), bytes);
    axum::Json(serde_json::json!({"key": key, "hash": hash})).into_response()
}

impl YunhuSim {
    /// Where uploads go (the account's `upload_url`).
    pub fn upload_url(&self) -> String {
        format!("http://{}/qiniu/upload", self.server.addr())
    }

    /// The bytes uploaded under `key`.
    pub fn uploaded(&self, key: &str) -> Option<Vec<u8>> {
        self.shared.lock().uploads.get(key).cloned()
    }

    /// `user` sends a media message in `group`: `content_type` 2 with `image_url`, 4 with `file_url`, `file_name`
    /// and `file_size`, 10 with `video_url`, 11 with `audio_url`. Returns the message id.
    pub fn say_media(&self, group: &str, user: (&str, &str), content_type: u64, url: &str, name: &str) -> String {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let mut content = MsgContent::default();
        match content_type {
            2 => content.image_url = url.to_owned(),
            4 => {
                content.file_url = url.to_owned();
                content.file_name = name.to_owned();
            }
            10 => content.video_url = url.to_owned(),
            _ => content.audio_url = url.to_owned(),
        }
        let push = self.shared.message(&msg_id, group, 2, user, 1, content_type, content, "");
        self.shared.publish("push_message", &push);
        msg_id
    }
}
