//! An owner's schedules and their `--after` gates as a picture: a box per schedule that gates
//! another or is gated, an arrow from each schedule to the ones whose slots wait for it. A box
//! is in the status of the schedule's latest slot (its flow's status once it fired; `skipped`,
//! `missed`, `gated`… otherwise), or `paused`. Schedule names are the owner's text: escaped like
//! step names.

use taskflow_store::ScheduleSummary;

use super::svg::{self, Drawn, MOST_BOXES, TooMany, attribute};

/// The gates between `schedules` as an `<svg>` element for an HTML page, or `None` when no
/// schedule waits for another. A gate naming a schedule that is not among them has no arrow.
pub fn inline_svg(schedules: &[ScheduleSummary]) -> Option<Result<String, TooMany>> {
    let named = |name: &str| schedules.iter().position(|one| one.schedule.name == name);
    let mut edges = Vec::new();
    for (to, one) in schedules.iter().enumerate() {
        for from in one.schedule.spec.after.iter().filter_map(|name| named(name)) {
            if from != to && !edges.contains(&(from, to)) {
                edges.push((from, to));
            }
        }
    }
    if edges.is_empty() {
        return None;
    }
    // Only the schedules an arrow touches, renumbered.
    let mut shown: Vec<usize> = edges.iter().flat_map(|&(from, to)| [from, to]).collect();
    shown.sort_unstable();
    shown.dedup();
    if shown.len() > MOST_BOXES {
        return Some(Err(TooMany { boxes: format!("{} schedules", shown.len()) }));
    }
    let place = |index: usize| shown.binary_search(&index).unwrap_or_default();
    let edges: Vec<(usize, usize)> =
        edges.into_iter().map(|(from, to)| (place(from), place(to))).collect();
    let boxes = shown
        .iter()
        .map(|&index| {
            let ScheduleSummary { schedule, last_slot } = &schedules[index];
            let status = if schedule.paused {
                "paused".to_owned()
            } else {
                match last_slot {
                    Some(slot) => slot.flow_status.map_or_else(
                        || slot.status.as_str().to_owned(),
                        |status| status.as_str().to_owned(),
                    ),
                    None => "no slot yet".to_owned(),
                }
            };
            Drawn {
                title: schedule.name.clone(),
                status_line: status.clone(),
                hooks: format!(
                    "data-schedule=\"{}\" data-status=\"{}\"",
                    attribute(&schedule.name),
                    attribute(&status)
                ),
                status,
            }
        })
        .collect();
    Some(Ok(svg::for_page(&svg::draw(boxes, &edges))))
}
