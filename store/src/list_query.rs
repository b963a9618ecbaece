//! The `flows list` query, the same on every SQL backend: which filters a [`ListQuery`]
//! applies, the condition each adds on `flows f`, the statement around them and the values they
//! bind, in order. A backend only spells the placeholders in its dialect and keeps one prepared
//! text per combination of filters, so a page never pays for building or planning a query.

use std::borrow::Cow;

#[cfg(doc)]
use crate::model::Flow;
use crate::model::ListQuery;
use crate::schedule;
use crate::status::FlowStatus;

/// Which filters a `flows list` query applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFilters {
    pub owner: bool,
    pub status: bool,
    pub name: bool,
    /// Only flows older than a given one (the next page).
    pub before: bool,
    /// Only the flows of one schedule: the ids of its [`schedule::slot_id_range`], `[NAME@0,
    /// NAME@:)` (which holds those ids only where ids compare by their bytes: a backend's must,
    /// whatever its database's collation), that end with `@` and an instant
    /// ([`schedule::SLOT_INSTANT_PATTERNS`]): the ids [`schedule::is_slot_flow_id`] reserves.
    pub schedule: bool,
    pub since: bool,
    pub until: bool,
}

/// What a placeholder stands for, for a dialect that spells the type out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Text,
    Integer,
}

/// A value a list query binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListValue<'q> {
    Text(Cow<'q, str>),
    Integer(i64),
}

impl ListFilters {
    /// How many combinations there are: [`Self::index`] runs below it.
    pub const COMBINATIONS: usize = 1 << 7;

    /// The filters of `query`, for a caller bound to one owner or not.
    pub fn of(owner: bool, query: &ListQuery) -> ListFilters {
        ListFilters {
            owner,
            status: query.status.is_some(),
            name: query.name.is_some(),
            before: query.before.is_some(),
            schedule: query.schedule.is_some(),
            since: query.since.is_some(),
            until: query.until.is_some(),
        }
    }

    /// Each combination once, in the order of [`Self::index`].
    pub fn all() -> impl Iterator<Item = ListFilters> {
        (0..Self::COMBINATIONS).map(|bits| ListFilters {
            owner: bits & 1 != 0,
            status: bits & 2 != 0,
            name: bits & 4 != 0,
            before: bits & 8 != 0,
            schedule: bits & 16 != 0,
            since: bits & 32 != 0,
            until: bits & 64 != 0,
        })
    }

    /// This combination's place in [`Self::all`].
    pub fn index(self) -> usize {
        [self.owner, self.status, self.name, self.before, self.schedule, self.since, self.until]
            .into_iter()
            .enumerate()
            .map(|(bit, on)| usize::from(on) << bit)
            .sum()
    }

    /// The whole query: each listed flow's row and its counts of steps (by name: a step whose
    /// latest attempt succeeded is done; of all, every name its journal has or, when more, the
    /// steps its pipeline lists: [`Flow::listed_steps`]; a `child` row is the record of the
    /// child flow a step runs, not a step of its own), newest first, through the index that
    /// fits the filters. `placeholder(n, kind)` spells the `n`th parameter (from 1); the values
    /// are [`list_values`]'s, in the same order. `listed_steps` is the dialect's expression of
    /// how many entries the array `steps` of the JSON text `fs.spec` has (NULL if none).
    pub fn statement(
        self,
        placeholder: impl FnMut(usize, ParamKind) -> String,
        listed_steps: &str,
    ) -> String {
        let (conditions, limit) = self.conditions(placeholder);
        let filter = if conditions.is_empty() { "TRUE".to_owned() } else { conditions };
        format!(
            "SELECT f.id, f.name, f.owner, f.sync_mode, f.status, f.revision, \
             f.cancel_requested_at, f.lease_host, f.lease_pid, f.lease_process_start, \
             f.lease_expires_at, f.created_at, f.updated_at, \
             (SELECT count(*) FROM steps s WHERE s.flow_id = f.id AND s.status = 'succeeded' \
              AND s.kind <> 'child' \
              AND NOT EXISTS (SELECT 1 FROM steps l \
                              WHERE l.flow_id = s.flow_id AND l.name = s.name AND l.seq > s.seq)), \
             (SELECT CASE WHEN listed > named THEN listed ELSE named END FROM (SELECT \
              (SELECT count(DISTINCT s.name) FROM steps s \
               WHERE s.flow_id = f.id AND s.kind <> 'child') AS named, \
              coalesce((SELECT {listed_steps} FROM flow_specs fs WHERE fs.flow_id = f.id), 0) \
              AS listed) AS counts) \
             FROM flows f WHERE {filter} ORDER BY f.created_at DESC, f.id DESC LIMIT {limit}"
        )
    }

    /// The conditions on `flows f`, joined with `AND` (empty when nothing is filtered), then the
    /// placeholder of the limit.
    fn conditions(
        self,
        mut placeholder: impl FnMut(usize, ParamKind) -> String,
    ) -> (String, String) {
        let mut next = 0;
        let mut param = |kind| {
            next += 1;
            placeholder(next, kind)
        };
        let mut clauses = Vec::new();
        if self.owner {
            clauses.push(format!("f.owner = {}", param(ParamKind::Text)));
        }
        if self.status {
            clauses.push(format!("f.status = {}", param(ParamKind::Text)));
        }
        if self.name {
            clauses.push(format!("f.name = {}", param(ParamKind::Text)));
        }
        if self.before {
            let (at, id) = (param(ParamKind::Integer), param(ParamKind::Text));
            clauses.push(format!("(f.created_at, f.id) < ({at}, {id})"));
        }
        if self.schedule {
            // The range is read through the ids' index; the patterns keep a slot's form.
            let (first, past) = (param(ParamKind::Text), param(ParamKind::Text));
            let instants =
                schedule::SLOT_INSTANT_PATTERNS.map(|instant| format!("f.id LIKE '%@{instant}'"));
            clauses
                .push(format!("f.id >= {first} AND f.id < {past} AND ({})", instants.join(" OR ")));
        }
        if self.since {
            clauses.push(format!("f.created_at >= {}", param(ParamKind::Integer)));
        }
        if self.until {
            clauses.push(format!("f.created_at < {}", param(ParamKind::Integer)));
        }
        (clauses.join(" AND "), param(ParamKind::Integer))
    }
}

/// The values of `query`'s filters (`owner` when bound to one), in the order of
/// [`ListFilters::conditions`], then the limit.
pub fn list_values<'q>(owner: Option<&'q str>, query: &'q ListQuery) -> Vec<ListValue<'q>> {
    let text = |value: &'q str| ListValue::Text(Cow::Borrowed(value));
    let mut values = Vec::new();
    values.extend(owner.map(text));
    values.extend(query.status.map(FlowStatus::as_str).map(text));
    values.extend(query.name.as_deref().map(text));
    if let Some((at, id)) = &query.before {
        values.extend([ListValue::Integer(at.as_millis()), text(id.as_str())]);
    }
    if let Some(name) = &query.schedule {
        // The ids no create but a slot's makes: the same range.
        let (first, past) = schedule::slot_id_range(name);
        values.extend([ListValue::Text(Cow::Owned(first)), ListValue::Text(Cow::Owned(past))]);
    }
    values.extend(query.since.map(|at| ListValue::Integer(at.as_millis())));
    values.extend(query.until.map(|at| ListValue::Integer(at.as_millis())));
    values.push(ListValue::Integer(i64::from(query.limit)));
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn check(owner: Option<&str>, query: ListQuery, conditions: &str, values: &[ListValue<'_>]) {
        let filters = ListFilters::of(owner.is_some(), &query);
        let (text, limit) = filters.conditions(|n, kind| match kind {
            ParamKind::Text => format!("${n}::text"),
            ParamKind::Integer => format!("${n}::bigint"),
        });
        assert_eq!(format!("{text} | {limit}"), conditions);
        assert_eq!(list_values(owner, &query), values);
        assert_eq!(ListFilters::all().nth(filters.index()), Some(filters));
    }

    #[test]
    fn each_filter_adds_its_condition_and_its_values_in_order() {
        check(None, ListQuery::default(), " | $1::bigint", &[ListValue::Integer(50)]);
        check(
            Some("alice"),
            ListQuery {
                status: Some(FlowStatus::Failed),
                schedule: Some("digest".into()),
                until: Some(Timestamp::from_millis(9)),
                limit: 10,
                ..ListQuery::default()
            },
            "f.owner = $1::text AND f.status = $2::text AND f.id >= $3::text AND f.id < $4::text \
             AND (f.id LIKE '%@____-__-__T__:__:__Z' OR f.id LIKE '%@____-__-__T__:__:__.___Z') \
             AND f.created_at < $5::bigint | $6::bigint",
            &[
                ListValue::Text("alice".into()),
                ListValue::Text("failed".into()),
                ListValue::Text("digest@0".into()),
                ListValue::Text("digest@:".into()),
                ListValue::Integer(9),
                ListValue::Integer(10),
            ],
        );
        check(
            None,
            ListQuery {
                name: Some("n".into()),
                before: Some((Timestamp::from_millis(5), "abc".parse().unwrap())),
                since: Some(Timestamp::from_millis(1)),
                ..ListQuery::default()
            },
            "f.name = $1::text AND (f.created_at, f.id) < ($2::bigint, $3::text) \
             AND f.created_at >= $4::bigint | $5::bigint",
            &[
                ListValue::Text("n".into()),
                ListValue::Integer(5),
                ListValue::Text("abc".into()),
                ListValue::Integer(1),
                ListValue::Integer(50),
            ],
        );
    }

    #[test]
    fn every_combination_has_its_own_index() {
        let indexes: Vec<usize> = ListFilters::all().map(ListFilters::index).collect();
        assert_eq!(indexes, (0..ListFilters::COMBINATIONS).collect::<Vec<_>>());
    }
}
