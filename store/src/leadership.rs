//! One holder of a role at a time among the processes sharing a database (the scheduler among
//! several serves). A backend whose database has one process at a time, or which serializes
//! the role's work on its own, always grants it; PostgreSQL holds a session advisory lock on a
//! connection of its own, which the server lets go of when the holder's connection ends (the
//! process died, the network dropped it).

/// What a backend keeps while a role is held: asked before each piece of the role's work.
pub trait Hold: Send {
    /// Whether the role is still held (PostgreSQL: the lock's connection answers).
    fn still_held(&mut self) -> bool;
}

/// A role held by this process; dropping it lets go of the role.
pub struct Leadership {
    hold: Option<Box<dyn Hold>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("shared", &self.hold.is_some()).finish()
    }
}

impl Leadership {
    /// A role that is always held: no other process can hold it.
    pub fn always() -> Self {
        Leadership { hold: None }
    }

    /// A role held as long as `hold` says so.
    pub fn held(hold: Box<dyn Hold>) -> Self {
        Leadership { hold: Some(hold) }
    }

    /// Whether the role is still held; once false, it is lost for good (ask for it again).
    pub fn still_held(&mut self) -> bool {
        self.hold.as_mut().is_none_or(|hold| hold.still_held())
    }
}
