pub mod crd;
pub mod validate;
pub mod eval;
pub mod train;
pub mod operator;
pub mod bench_gateway;
pub mod gateway;
