//! Run records of an agent: sessions, their tasks, the tasks' steps, the
//! steps' tool calls, and artifacts. Privacy is set on the session and
//! inherited by everything under it.

mod sessions;
mod steps;

use crate::text_enum::text_enum;

pub use sessions::{NewSession, NewTask, Session, SessionPatch, Task, TaskPatch};
pub use steps::{
    Artifact, NewArtifact, NewStep, NewToolCall, Step, StepPatch, ToolCall, ToolCallPatch,
};

text_enum!(
    "status",
    /// Where a session, task, step or tool call is.
    RunStatus {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}
