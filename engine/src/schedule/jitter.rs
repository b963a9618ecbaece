//! Jitter: each slot of a schedule with `jitter` fires a little after its instant, so that many
//! schedules on the same minute do not all start at once. The delay is a hash of the schedule's
//! name and the slot, so a slot fires at the same moment whichever process decides it, and
//! again after a restart.

use taskflow_store::time::Timestamp;

/// When slot `slot` of schedule `name` fires: its instant plus a delay under `jitter_ms`.
pub fn fire_at(name: &str, slot: Timestamp, jitter_ms: u64) -> Timestamp {
    if jitter_ms == 0 {
        return slot;
    }
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes().chain(slot.as_millis().to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    slot.plus(std::time::Duration::from_millis(hash % jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_under_the_jitter_and_the_same_every_time() {
        let slot = Timestamp::from_millis(1_796_454_000_000);
        assert_eq!(fire_at("digest", slot, 0), slot);
        let delays: Vec<i64> = (0..50)
            .map(|n| fire_at(&format!("s{n}"), slot, 60_000).as_millis() - slot.as_millis())
            .collect();
        assert!(delays.iter().all(|delay| (0..60_000).contains(delay)), "{delays:?}");
        assert!(delays.iter().collect::<std::collections::BTreeSet<_>>().len() > 40, "spread");
        assert_eq!(fire_at("digest", slot, 60_000), fire_at("digest", slot, 60_000));
    }
}
