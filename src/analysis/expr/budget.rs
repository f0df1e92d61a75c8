//! The budget one evaluation runs under: steps, memory units and a time backstop, with the
//! bounds taken from [`Limits`].

use std::time::Instant;

use super::types::{EvalError, Limits};

pub(super) struct Budget {
    pub(super) limits: Limits,
    steps: u64,
    memory: u64,
    started: Instant,
    next_clock: u64,
}

impl Budget {
    pub(super) fn new(limits: Limits) -> Self {
        Budget {
            limits,
            steps: 0,
            memory: 0,
            started: Instant::now(),
            next_clock: 1024,
        }
    }

    pub(super) fn step(&mut self, n: u64) -> Result<(), EvalError> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(EvalError::Budget(format!(
                "expression exceeded its evaluation budget of {} steps",
                self.limits.max_steps
            )));
        }
        if self.steps >= self.next_clock {
            self.next_clock = self.steps.saturating_add(1024);
            if self.started.elapsed() > self.limits.max_time {
                return Err(EvalError::Budget(format!(
                    "expression exceeded its time budget of {} ms",
                    self.limits.max_time.as_millis()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn fits(&self, units: u64) -> Result<(), EvalError> {
        if self.memory.saturating_add(units) > self.limits.max_memory {
            return Err(EvalError::Budget("memory budget exceeded".to_owned()));
        }
        Ok(())
    }

    pub(super) fn alloc(&mut self, units: u64) -> Result<(), EvalError> {
        self.fits(units)?;
        self.memory += units;
        // Building the value took time too.
        self.step(units / 16)
    }
}
