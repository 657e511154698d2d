//! Fixture-based tests of the public rewrite functions.
