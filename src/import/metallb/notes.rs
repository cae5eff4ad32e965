//! What the converter could not carry over, and what the operator must do by hand.

use std::fmt;

/// One setting that was not carried over (or needs a manual step), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Where it was written: `peers[0].bfd-profile`, `BGPPeer tor1 spec.vrf`.
    pub subject: String,
    /// What happened to it and why.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// The notes of one conversion, in input order.
#[derive(Debug, Default)]
pub(crate) struct Notes(pub Vec<Note>);

impl Notes {
    /// Records a note about `subject`.
    pub fn add(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.0.push(Note {
            subject: subject.into(),
            message: message.into(),
        });
    }
}
