//! Frames from a peer: the stream splitter, the body decoder, `authorize` on
//! every record that decodes, and the engine's whole receive path.
//!
//! Input: bytes as they arrive on a link's stream. The first byte picks the
//! sender (the parent or a child of the receiving node) and how the stream
//! is cut into reads.
#![no_main]

use jobmesh_protocol::kv::{Kv, MemKv};
use jobmesh_protocol::routing::authorize;
use jobmesh_protocol::wire::{self, Frame, FrameReader, FrameV1, LEN_PREFIX};
use jobmesh_protocol::{Engine, NodeId};
use libfuzzer_sys::fuzz_target;

fn id(s: &str) -> NodeId {
    NodeId::parse(s).expect("a valid node id")
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else { return };
    let me = id("gz/a");
    let parent = id("gz");
    let child = id("gz/a/x");
    let peer = if ctl & 1 == 0 { &parent } else { &child };

    // The body decoder alone, on the whole input: never panics, and what it
    // accepts re-encodes to something that decodes to the same frame.
    if let Ok(frame) = wire::decode_body(stream) {
        let bytes = wire::encode_frame(&frame);
        let again = wire::decode_body(&bytes[LEN_PREFIX..]).expect("an encoded frame decodes");
        assert_eq!(again, frame);
    }

    let mut engine = Engine::open(me.clone(), MemKv::new(), Default::default(), 1_000).expect("an empty store opens");
    engine.link_up(&parent, 1_000).expect("parent link");
    engine.link_up(&child, 1_000).expect("child link");

    let mut reader = FrameReader::default();
    let step = usize::from(ctl >> 1).max(1);
    let mut now = 1_000;
    for piece in stream.chunks(step) {
        reader.push(piece);
        loop {
            let frame = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                // A frame that does not decode closes the link.
                Err(_) => return,
            };
            if let Frame::V1(FrameV1::Batch(b)) = &frame {
                for r in &b.records {
                    for (m, p) in [(&me, peer), (&parent, &me), (&child, &me), (&me, &id("gz/b"))] {
                        if authorize(m, p, r).is_ok() {
                            r.validate().expect("an authorized record is valid");
                        }
                    }
                }
            }
            now += 7;
            if engine.handle_frame(peer, frame, now).is_err() {
                return;
            }
            // Make what was applied durable, as the flusher would, and
            // drain everything the engine wants to say.
            let ticket = engine.begin_flush();
            engine.kv_mut().flush();
            engine.flushed(ticket, now);
            while engine.poll_transmit().is_some() {}
            while engine.poll_event().is_some() {}
            let _ = engine.handle_timeout(now + 60_000);
        }
    }
    let kv = engine.into_kv();
    jobmesh_protocol::integrity::verify(&kv).expect("what the engine applied verifies");
    let _ = kv.get(b"mseq");
});
