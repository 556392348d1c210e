//! Undo for multi-step device-mapper changes: each step pushes how to take
//! it back, and unless the change completes, the steps run newest first.

use devicemapper::DmName;

use super::device::{DmControl, Suspend, TableLine};
use super::error::Result;

/// One undo step: what it undoes, and how.
type UndoStep<'a> = (String, Box<dyn FnOnce(&DmControl) -> Result<()> + 'a>);

/// Steps to undo, newest first, when dropped before [`Undo::done`]. A
/// failing step is logged and the others still run.
#[must_use = "dropping an Undo runs its steps"]
pub struct Undo<'a> {
    dm: &'a DmControl,
    steps: Vec<UndoStep<'a>>,
}

impl std::fmt::Debug for Undo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|(w, _)| w))
            .finish()
    }
}

impl<'a> Undo<'a> {
    /// No steps yet.
    pub fn new(dm: &'a DmControl) -> Self {
        Undo {
            dm,
            steps: Vec::new(),
        }
    }

    /// Adds a step: `f` undoes `what`.
    pub fn push(&mut self, what: impl Into<String>, f: impl FnOnce(&DmControl) -> Result<()> + 'a) {
        self.steps.push((what.into(), Box::new(f)));
    }

    /// The change completed: nothing is undone.
    pub fn done(mut self) {
        self.steps.clear();
    }

    /// Loads `table` into `name`; undone by dropping it.
    pub fn load(&mut self, name: &'a DmName, table: &[TableLine], read_only: bool) -> Result<()> {
        self.dm.load(name, table, read_only)?;
        self.push(format!("drop the table loaded into {name}"), move |dm| {
            unload(dm, name)
        });
        Ok(())
    }

    /// Suspends `name`; undone by dropping any loaded table, then resuming.
    pub fn suspend(&mut self, name: &'a DmName, how: Suspend) -> Result<()> {
        self.dm.suspend(name, how)?;
        self.push(format!("resume {name} unchanged"), move |dm| {
            unload(dm, name)?;
            dm.resume(name)
        });
        Ok(())
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        while let Some((what, f)) = self.steps.pop() {
            if let Err(e) = f(self.dm) {
                log::error!("undo ({what}) failed: {e}");
            }
        }
    }
}

/// Drops a table waiting in the inactive slot of `name`, if there is one
/// (so undo steps can run in any order without swapping it in).
fn unload(dm: &DmControl, name: &DmName) -> Result<()> {
    if dm.info(name)?.inactive_table {
        dm.clear_inactive(name)?;
    }
    Ok(())
}
