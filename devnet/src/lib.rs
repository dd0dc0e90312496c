//! Local Cairn networks for newcomers, tests and benchmarks: demo agencies,
//! their keys and a genesis for them ([`demo_genesis`]), a devnet folder
//! ([`layout`]), real `cairn node run` processes on 127.0.0.1 and their
//! perturbations ([`supervisor`], driven through [`control`]), demo
//! credentials in every lifecycle state ([`seed`]), `devnet up` ([`up`]) and
//! a load generator ([`load`]).
//!
//! The demo world: one provincial-level region per validator,
//! each with a traffic police corps (a validator and the issuer of driver's
//! licenses) and a market regulation bureau (the issuer of business
//! licenses), so that a four-validator devnet shows cross-region recognition
//! between Shanghai, Jiangsu, Zhejiang and Anhui.

#![forbid(unsafe_code)]

pub mod client;
pub mod control;
mod demo;
mod error;
pub mod layout;
pub mod load;
pub mod seed;
pub mod supervisor;
pub mod up;

pub use demo::{
    DemoAgency, DemoSeat, MAX_DEMO_VALIDATORS, TYPE_BUSINESS_LICENSE, TYPE_DRIVER_LICENSE,
    demo_agencies, demo_genesis,
};
pub use error::DevnetError;
