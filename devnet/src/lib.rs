//! Local Cairn networks for newcomers, tests and benchmarks: demo agencies,
//! their keys and a genesis for them, and (with the devnet work) real node
//! processes on 127.0.0.1 with perturbations.
//!
//! This part is the demo world: one provincial-level region per validator,
//! each with a traffic police corps (a validator and the issuer of driver's
//! licenses) and a market regulation bureau (the issuer of business
//! licenses), so that a four-validator devnet shows cross-region recognition
//! between Shanghai, Jiangsu, Zhejiang and Anhui.

#![forbid(unsafe_code)]

mod demo;
mod error;

pub use demo::{
    DemoAgency, DemoSeat, MAX_DEMO_VALIDATORS, TYPE_BUSINESS_LICENSE, TYPE_DRIVER_LICENSE,
    demo_agencies, demo_genesis,
};
pub use error::DevnetError;
