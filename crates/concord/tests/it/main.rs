//! Integration tests of the `concord` binary: real processes, a real SQLite file, real HTTP
//! on loopback. One test binary (ripgrep's layout): on 2 cores, one link instead of many.

mod support;

mod admin_api;
mod attack;
mod audit;
mod cli;
mod creator;
mod deletes;
mod directory;
mod egress_matrix;
mod feeds;
mod four_eyes;
mod incident;
mod interop;
mod join;
mod leak;
mod limits;
mod matching;
mod misp;
mod oidc;
mod ops;
mod outbound;
mod package;
mod partners;
mod pattern;
mod people;
mod postgres;
mod revoke;
mod sync;
mod taxii;
mod ui;
mod webhooks;
