//! What an adapter can do natively (the destination queue renders everything else as text), and the form of the
//! message ids a platform lets the sender choose.

use super::RemoteId;

/// Media kinds a destination can show natively.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MediaKinds {
    pub image: bool,
    pub audio: bool,
    pub video: bool,
    pub file: bool,
    pub sticker: bool,
    /// Images are shown only from https addresses (IIROSE): an image elsewhere goes as a link.
    pub https_only: bool,
}

/// What an adapter can do natively; everything else is rendered as text by the destination queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Capabilities {
    pub edit: bool,
    pub recall: bool,
    pub reply: bool,
    pub mention: bool,
    pub media: MediaKinds,
    /// Longer texts are split into parts of at most this many characters.
    pub max_text_len: Option<usize>,
    /// The platform has a sender field apart from the text (Fishroom, the API): `nick_format` fills it.
    pub separate_sender: bool,
    /// The platform shows formatting (styled text, code blocks, quotes, links with a text): the adapter is given it
    /// as segments and writes it in the platform's markup (Yunhu: markdown). Elsewhere it arrives as plain text.
    pub rich_text: bool,
    /// The platform shows where a message comes from and who sent it apart from the text (the API: origin
    /// account, room and platform, the sender's id and avatar, actions, attachments): rendering fills
    /// `OutMessage::origin`.
    pub sender_details: bool,
    /// How the platform's client-chosen message ids look, where it lets the sender choose one.
    pub client_ids: ClientIdForm,
}

/// Message ids the sender chooses: they are registered as ours before the send, so an echo that arrives
/// before the platform's answer is recognised.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ClientIdForm {
    /// The platform assigns ids itself, or has none.
    #[default]
    None,
    /// A hyphenated uuid (Missevan `msg_id`).
    Uuid,
    /// A uuid as 32 hex digits (Yunhu `msg_id`).
    UuidHex,
    /// A number of this many decimal digits (IIROSE `i`).
    Digits(u8),
}

impl ClientIdForm {
    /// A fresh id. Uuids are time-ordered (the bits of a version 7 uuid) so that the id map's rows of one room
    /// go in at the end of its index instead of at random places, and a commit rewrites a few pages rather than
    /// one per message; they are marked version 4, the form the platforms document (Yunhu: uuid4 hex).
    pub fn generate(self) -> Option<RemoteId> {
        let ordered = *uuid::Uuid::now_v7().as_bytes();
        let uuid = uuid::Builder::from_bytes(ordered).with_version(uuid::Version::Random).into_uuid();
        match self {
            ClientIdForm::None => None,
            ClientIdForm::Uuid => Some(RemoteId::new(uuid.hyphenated().to_string())),
            ClientIdForm::UuidHex => Some(RemoteId::new(uuid.simple().to_string())),
            ClientIdForm::Digits(n) => {
                let digits: String = (0..n).map(|_| char::from(b'0' + fastrand::u8(0..10))).collect();
                Some(RemoteId::new(digits))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_time_ordered() {
        for form in [ClientIdForm::Uuid, ClientIdForm::UuidHex] {
            let ids: Vec<String> = (0..1000).map(|_| form.generate().unwrap().to_string()).collect();
            assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{form:?} ids sort in the order they were made");
            let parsed = uuid::Uuid::parse_str(&ids[0]).unwrap();
            assert_eq!((parsed.get_version_num(), parsed.get_variant()), (4, uuid::Variant::RFC4122));
        }
        assert_eq!(ClientIdForm::Uuid.generate().unwrap().as_str().len(), 36);
        assert_eq!(ClientIdForm::UuidHex.generate().unwrap().as_str().len(), 32);
    }

    #[test]
    fn client_ids_take_the_platform_form() {
        assert!(ClientIdForm::None.generate().is_none());
        assert_eq!(ClientIdForm::Uuid.generate().unwrap().as_str().len(), 36);
        let hex = ClientIdForm::UuidHex.generate().unwrap();
        assert!(hex.as_str().len() == 32 && hex.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        let digits = ClientIdForm::Digits(12).generate().unwrap();
        assert!(digits.as_str().len() == 12 && digits.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(ClientIdForm::Uuid.generate(), ClientIdForm::Uuid.generate());
    }
}
