//! The jobs behind the commands, as library calls over the data → features → projection →
//! retrieval → outputs flow. The CLI converts its flags into these options once and calls one
//! job per command.
pub mod demo;
pub mod eval;
pub mod explain;
pub mod export;
pub mod extract;
pub mod fit;
pub mod rank;
pub mod report;
pub mod split;
