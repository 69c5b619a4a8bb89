pub mod bench;
pub mod bench_ann;
pub mod bench_gateway;
pub mod bench_soak;
pub mod bench_worker;
pub mod bundle;
pub mod crd;
pub mod eval;
#[cfg(test)]
mod eval_parity;
pub mod eval_queues;
pub mod gateway;
pub mod index;
pub mod listen;
pub mod operator;
pub mod train;
pub mod up;
pub mod validate;
pub mod worker;
