//! The wire parsers' budget (design §9): at least 200 MB/s of captured frames, decoded and mapped to events.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use chatbridge::adapters::missevan::wire::{Frame, Item, decode_binary, decode_text, encode_binary, to_events};
use chatbridge::model::{AccountId, Platform, RoomAddr, RoomId};

const SEED: &str = include_str!("../tests/fixtures/wire/missevan/seed_frames.jsonl");
const EVENTS: &str = include_str!("../tests/fixtures/wire/missevan/events.jsonl");

fn frames() -> (Vec<String>, Vec<Vec<u8>>) {
    let lines: Vec<&str> = SEED.lines().chain(EVENTS.lines()).collect();
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // The server batches: arrays of a few items, Brotli-compressed.
    let binary = lines.chunks(3).map(|chunk| encode_binary(format!("[{}]", chunk.join(",")).as_bytes())).collect();
    (text, binary)
}

fn map(frame: Frame, room: &RoomAddr) -> usize {
    let Frame::Items(items) = frame else { return 0 };
    items
        .into_iter()
        .filter_map(|raw| {
            serde_json::from_str::<Item>(raw.get()).ok().map(|item| to_events(&item, room, raw.get()).len())
        })
        .sum()
}

fn missevan(c: &mut Criterion) {
    let room = RoomAddr::new(AccountId::new(Platform::Missevan, "fm"), RoomId::new("868904499"));
    let (text, binary) = frames();
    let mut group = c.benchmark_group("missevan");
    let text_bytes: usize = text.iter().map(String::len).sum();
    group.throughput(Throughput::Bytes(text_bytes as u64));
    group.bench_function("text_frames", |b| {
        b.iter(|| text.iter().map(|t| decode_text(t).map_or(0, |f| map(f, &room))).sum::<usize>())
    });
    // Throughput counted in captured (compressed) bytes, as the budget is stated.
    let binary_bytes: usize = binary.iter().map(Vec::len).sum();
    println!("brotli frames: {binary_bytes} bytes captured for {text_bytes} bytes of JSON");
    group.throughput(Throughput::Bytes(binary_bytes as u64));
    group.bench_function("brotli_frames", |b| {
        b.iter(|| binary.iter().map(|f| decode_binary(f).map_or(0, |f| map(f, &room))).sum::<usize>())
    });
    group.finish();
}

/// A large captured-style batch: 200 public records, newest first, gzipped as the server sends it.
fn iirose(c: &mut Criterion) {
    use chatbridge::adapters::iirose::wire::{
        Packet, Record, decode_frame, encode_frame, escape, parse_packet, parse_text,
    };
    let records: Vec<String> = (0..200)
        .rev()
        .map(|i| {
            let text = escape(&format!("第{i}条消息 (_hr) 上学_1762414014 (hr_) 回复 [*小学*]  看 [https://r.iirose.com/i/{i}.jpg] & <ok>"));
            format!("{}>http://r.iirose.com/i/4017-4V.jpg>上学{i}>{text}>614530>614530>2>>679a51f1d4893>''1866'57'2,100,0.5>{:012}", 1762612113 + i, i)
        })
        .collect();
    let packet = format!("\"{}", records.join("<"));
    let frame = encode_frame(&packet);
    let mut group = c.benchmark_group("iirose");
    group.throughput(Throughput::Bytes(packet.len() as u64));
    group.bench_function("batch_packet", |b| {
        b.iter(|| {
            parse_packet(&packet)
                .into_iter()
                .map(|p| match p {
                    Packet::Chat { public, .. } => public
                        .iter()
                        .map(|r| if let Record::Message(m) = r { parse_text(&m.text).0.0.len() } else { 0 })
                        .sum(),
                    _ => 0,
                })
                .sum::<usize>()
        })
    });
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("batch_frame_gzip", |b| b.iter(|| parse_packet(&decode_frame(&frame).unwrap()).len()));
    group.finish();
}

/// Captured-style Yunhu push frames: `WsWrapper` + `PushMessage`, decoded and mapped.
fn yunhu(c: &mut Criterion) {
    use chatbridge::adapters::yunhu::wire::{Frame, decode, kind};
    use chatbridge::sim::yunhu::{YunhuSim, YunhuSimConfig};
    // The simulator builds the frames exactly as it sends them; collect them off its socket.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let frames: Vec<Vec<u8>> = runtime.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        let sim = YunhuSim::start(YunhuSimConfig {
            users: vec![("t".into(), "1".into(), "bot".into())],
            ..YunhuSimConfig::default()
        })
        .await
        .unwrap();
        let (mut ws, _) = tokio_tungstenite::connect_async(sim.ws_url()).await.unwrap();
        let login =
            r#"{"seq":"1","cmd":"login","data":{"userId":"1","token":"t","platform":"windows","deviceId":"d"}}"#;
        ws.send(tokio_tungstenite::tungstenite::Message::text(login)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        for i in 0..100 {
            let text = format!("第{i}条消息 @阿花 看看这个 https://example.com/{i}");
            sim.post("g1", ("u1", "小明"), &text, &["u2"], ("", ""));
        }
        let mut frames = Vec::new();
        while frames.len() < 100 {
            if let Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(b))) = ws.next().await {
                frames.push(b.to_vec());
            }
        }
        frames
    });
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("yunhu");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("push_frames", |b| {
        b.iter(|| {
            frames
                .iter()
                .map(|f| match decode(f) {
                    Ok(Frame::Push(p)) => std::hint::black_box(kind(&p, false)).filter_kind().is_some() as usize,
                    _ => 0,
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, missevan, iirose, yunhu);
criterion_main!(benches);
