//! Media cards (issue #33 §2): a song or a video shared to the room is a public message whose text is
//! `m__4@<source>>title>artist>cover>colour>bitrate` (protocols.md §1.6, from the public clients it cites; the
//! record's own `>` are the field separators, the card's arrive escaped as `&gt;`). A fan elsewhere reads a line
//! with the title and the artist, and sees the cover as media.

use crate::model::{Content, Segment, Style};

const CARD: &str = "m__4";

/// The card a message text stands for; `None` for any other text (or a card too short to be one).
pub fn card(text: &str) -> Option<Content> {
    let rest = text.strip_prefix(CARD)?;
    let fields: Vec<&str> = rest.split('>').map(str::trim).collect();
    let [source, title, rest @ ..] = fields.as_slice() else { return None };
    if title.is_empty() {
        return None;
    }
    let artist = rest.first().copied().unwrap_or_default();
    let cover = rest.get(1).copied().filter(|c| c.starts_with("https://") || c.starts_with("http://"));
    let source = source.trim_start_matches(['@', '=']).to_ascii_lowercase();
    let kind =
        if ["bilibili", "video", "youtube", "douyin"].iter().any(|v| source.contains(v)) { "video" } else { "music" };
    let cut = |s: &str, n: usize| s.chars().filter(|c| !c.is_control()).take(n).collect::<String>();
    let mut segments =
        vec![Segment::Text(format!("[{kind}] ")), Segment::Styled { text: cut(title, 80), style: Style::BOLD }];
    if !artist.is_empty() {
        segments.push(Segment::Text(format!(" — {}", cut(artist, 60))));
    }
    if let Some(cover) = cover {
        segments.push(Segment::Text(" ".to_owned()));
        segments.push(Segment::Image { url: cover.to_owned() });
    }
    Some(Content(segments))
}

#[cfg(test)]
mod tests {
    use crate::adapters::iirose::wire::{Packet, Record, parse_packet};
    use crate::model::Segment;

    const CARDS: &str = include_str!("../../../tests/fixtures/wire/iirose/cards.txt");

    fn texts() -> Vec<String> {
        crate::corpus::frames(CARDS)
            .into_iter()
            .flat_map(parse_packet)
            .flat_map(|p| match p {
                Packet::Chat { public, .. } => public,
                other => panic!("{other:?}"),
            })
            .map(|r| match r {
                Record::Message(m) => m.text,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_song_and_a_video_card_become_a_line_and_the_cover() {
        let texts = texts();
        assert_eq!(texts.len(), 3);
        let (song, _) = super::super::text::parse_text(&texts[0]);
        assert_eq!(song.to_plain_text(), "[music] 晴天 — 周杰伦 [image] https://p1.music.126.net/cover.jpg");
        assert!(song.0.contains(&Segment::Image { url: "https://p1.music.126.net/cover.jpg".into() }), "{song:?}");
        let (video, _) = super::super::text::parse_text(&texts[1]);
        assert_eq!(video.to_plain_text(), "[video] 猫猫合集 — UP主");
        assert!(!video.0.iter().any(|s| matches!(s, Segment::Image { .. })), "no cover, no image");
        let (short, _) = super::super::text::parse_text(&texts[2]);
        assert!(short.to_plain_text().starts_with("m__4@netease"), "{short:?}");
    }
}
