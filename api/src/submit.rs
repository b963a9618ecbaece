//! Create-or-continue: submitting a spec under an id of one's choosing (a business key, a
//! schedule's slot) creates the flow the first time and finds it again every later time, so a
//! submission can be repeated safely. The same id with another spec is refused, naming the
//! first difference, never silently reused.

use serde_json::{Value, json};
use taskflow_engine::{Engine, FlowSpec};
use taskflow_store::{Error, Flow, FlowId, Lease, NewFlow, OwnerHandle};

use crate::error::{ApiError, Result};

/// What a submission found.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new flow, queued.
    Created(Flow),
    /// A new flow, queued, its lease held by this process ([`Hold::ToRun`]).
    Held(Flow, Lease),
    /// The flow with this id, created earlier from the same spec, as it is now.
    Existing(Flow),
}

impl Submitted {
    pub fn flow(&self) -> &Flow {
        match self {
            Submitted::Created(flow) | Submitted::Held(flow, _) | Submitted::Existing(flow) => flow,
        }
    }

    /// Whether the submission made the flow.
    pub fn is_new(&self) -> bool {
        !matches!(self, Submitted::Existing(_))
    }
}

/// Who runs a flow a submission creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Whichever runner claims it (serve, a worker).
    Queue,
    /// This process: the lease is taken in the creation's transaction, so no worker woken by
    /// the new flow claims it first.
    ToRun,
}

/// Creates a flow that runs `spec` for `goal`, with id `id` if given; a flow that already has
/// that id, the same spec and the same goal is found instead.
pub async fn create_or_continue(
    engine: &Engine,
    spec: &FlowSpec,
    id: Option<FlowId>,
    goal: Option<String>,
    hold: Hold,
) -> Result<Submitted> {
    let create = |id: Option<FlowId>, goal: Option<String>| async move {
        match hold {
            Hold::Queue => engine.create_with_goal(spec, id, goal).await.map(Submitted::Created),
            Hold::ToRun => engine
                .create_held(spec, id, goal)
                .await
                .map(|(flow, lease)| Submitted::Held(flow, lease)),
        }
    };
    let Some(id) = id else {
        return Ok(create(None, goal).await?);
    };
    let wanted = spec.to_value();
    if let Some(existing) = existing(engine, &id, &wanted, goal.as_deref())? {
        return Ok(existing);
    }
    let created = create(Some(id.clone()), goal.clone()).await;
    match created.map_err(ApiError::from) {
        Ok(submitted) => Ok(submitted),
        // Another submission of the same id got there first.
        Err(ApiError::Store(Error::IdTaken { .. })) => {
            match existing(engine, &id, &wanted, goal.as_deref())? {
                Some(existing) => Ok(existing),
                None => Err(Error::IdTaken { id: id.to_string() }.into()),
            }
        }
        Err(error) => Err(error),
    }
}

/// Creates a mirrored flow, or finds the one created earlier under the same id from the same
/// submission: the same name, controller, goal and first state (the state it was created
/// with, as its first revision recorded it, whatever its reports made of it since). Any other
/// submission under that id is refused, naming the first difference.
pub fn create_or_find_mirrored(handle: &OwnerHandle, new: NewFlow) -> Result<Submitted> {
    let Some(id) = new.id.clone() else {
        return Ok(Submitted::Created(handle.create(new)?));
    };
    let want = json!({"sync_mode": new.sync_mode.as_str(), "name": new.name,
                      "controller": new.controller, "goal": new.goal, "state": new.state});
    let found = |flow: Flow| -> Result<Submitted> {
        let (goal, state) = as_created(handle, &flow)?;
        let have = json!({"sync_mode": flow.sync_mode.as_str(), "name": flow.name,
                          "controller": flow.controller, "goal": goal, "state": state});
        if want == have {
            return Ok(Submitted::Existing(flow));
        }
        // Another kind of flow is the difference to name, not what follows from it.
        let (have, want) = match have["sync_mode"] != want["sync_mode"] {
            true => {
                (json!({"sync_mode": have["sync_mode"]}), json!({"sync_mode": want["sync_mode"]}))
            }
            false => (have, want.clone()),
        };
        Err(ApiError::IdTaken { id: id.to_string(), difference: difference(Some(&have), &want) })
    };
    match handle.flow(&id) {
        Ok(flow) => return found(flow),
        Err(Error::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    match handle.create(new.clone()) {
        Ok(flow) => Ok(Submitted::Created(flow)),
        Err(Error::IdTaken { .. }) => match handle.flow(&id) {
            Ok(flow) => found(flow),
            Err(Error::NotFound { .. }) => Err(Error::IdTaken { id: id.to_string() }.into()),
            Err(error) => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// The goal and state `flow` was created with, which its owner's reports may have changed
/// since: its own while no report changed it (revision 1), else what its first revision
/// recorded (none when it had none).
fn as_created(handle: &OwnerHandle, flow: &Flow) -> Result<(Option<String>, Option<Value>)> {
    if flow.revision == 1 {
        return Ok((flow.goal.clone(), flow.state.clone()));
    }
    let history = handle.history(&flow.id)?;
    let created = history.iter().find(|revision| revision.revision == 1);
    let first = |field: &str| {
        created
            .and_then(|revision| revision.change.iter().find(|change| change.field == field))
            .map(|change| change.after.clone())
            .filter(|value| !value.is_null())
    };
    let goal = first("goal").and_then(|goal| goal.as_str().map(str::to_owned));
    Ok((goal, first("state")))
}

/// The caller's flow `id` if it exists with the spec `wanted` and the goal `goal`; an error if
/// it exists with another.
fn existing(
    engine: &Engine,
    id: &FlowId,
    wanted: &Value,
    goal: Option<&str>,
) -> Result<Option<Submitted>> {
    let flow = match engine.handle().flow(id) {
        Ok(flow) => flow,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let refused = |difference: String| ApiError::IdTaken { id: id.to_string(), difference };
    match &flow.spec {
        Some(stored) if stored == wanted => {}
        stored => return Err(refused(difference(stored.as_ref(), wanted))),
    }
    if flow.goal.as_deref() != goal {
        let (stored, new) = (json!({"goal": flow.goal}), json!({"goal": goal}));
        return Err(refused(difference(Some(&stored), &new)));
    }
    Ok(Some(Submitted::Existing(flow)))
}

/// The first place where the stored spec and the new one differ, in words.
pub fn difference(stored: Option<&Value>, new: &Value) -> String {
    let Some(stored) = stored else {
        return "the flow that has it runs no spec (it is driven from outside)".to_owned();
    };
    match first_difference(stored, new, String::new()) {
        Some((path, before, after)) => {
            let place = if path.is_empty() { "the spec".to_owned() } else { format!("`{path}`") };
            format!("{place} is {} there and {} here", shown(before), shown(after))
        }
        None => "they differ".to_owned(),
    }
}

fn first_difference<'a>(
    before: &'a Value,
    after: &'a Value,
    path: String,
) -> Option<(String, Option<&'a Value>, Option<&'a Value>)> {
    if before == after {
        return None;
    }
    let child = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => {
            let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| match (old.get(key), new.get(key)) {
                (Some(old), Some(new)) => first_difference(old, new, child(key)),
                (old, new) if old != new => Some((child(key), old, new)),
                _ => None,
            })
        }
        (Value::Array(old), Value::Array(new)) => {
            let at = (0..old.len().max(new.len())).find(|&at| old.get(at) != new.get(at))?;
            let item = format!("{path}[{at}]");
            match (old.get(at), new.get(at)) {
                (Some(old), Some(new)) => first_difference(old, new, item),
                (old, new) => Some((item, old, new)),
            }
        }
        _ => Some((path, Some(before), Some(after))),
    }
}

/// A value as the difference shows it: compact JSON, cut at 60 characters; absent when there
/// is none.
fn shown(value: Option<&Value>) -> String {
    let Some(value) = value else { return "absent".to_owned() };
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The first step of `spec` that would reach the host its engine runs on (commands, files,
/// the network, the environment: `Action::off_host` of the tools crate), with why:
/// what a caller who is not the host's user (a token's owner) may not send.
pub fn step_reaching_host(engine: &Engine, spec: &FlowSpec) -> Option<(usize, String)> {
    spec.steps.iter().enumerate().find_map(|(at, step)| {
        let why = engine.actions().reaches_host(&step.action, &step.with)?;
        Some((at, format!("step `{}` (`{}`): {why}", step.id, step.action)))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::difference;

    fn check(stored: serde_json::Value, new: serde_json::Value, expected: &str) {
        assert_eq!(difference(Some(&stored), &new), expected);
    }

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let spec = |value: &str| {
            json!({"name": "digest", "steps": [
                {"id": "a", "action": "echo", "with": {"value": "x"}},
                {"id": "b", "action": "echo", "with": {"value": value}},
            ]})
        };
        check(spec("y"), spec("z"), r#"`steps[1].with.value` is "y" there and "z" here"#);
        check(
            json!({"name": "digest", "steps": []}),
            json!({"name": "daily", "steps": []}),
            r#"`name` is "digest" there and "daily" here"#,
        );
        check(
            json!({"steps": [1]}),
            json!({"steps": [1, 2]}),
            "`steps[1]` is absent there and 2 here",
        );
        check(json!({"a": 1}), json!({"a": 1, "b": true}), "`b` is absent there and true here");
        check(json!(1), json!("1"), r#"the spec is 1 there and "1" here"#);
        assert_eq!(
            difference(None, &json!({})),
            "the flow that has it runs no spec (it is driven from outside)"
        );
        let long = "v".repeat(100);
        let shown = difference(Some(&json!({"a": long})), &json!({"a": 1}));
        assert!(shown.contains('…') && shown.len() < 120, "{shown}");
    }
}
