//! gameday's integration tests, in one test binary. Tests that need servers
//! start real redis-server, mariadbd and rabbitmq-server processes on free
//! loopback ports with their data in a temporary directory (see support/);
//! the aws platform's tests start moto's server the same way.

mod architecture;
mod aws;
mod boot;
mod chaos;
mod cli;
mod cluster;
mod kubernetes;
mod local;
mod manifests;
mod network;
mod report;
mod run;
mod shards;
mod shop;
mod support;
mod verdict;
