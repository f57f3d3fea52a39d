//! Offline adapter tests against recorded exchanges (filled in next).
