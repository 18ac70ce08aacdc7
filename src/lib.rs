//! gitseal core
