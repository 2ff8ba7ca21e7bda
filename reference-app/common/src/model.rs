//! Shapes that cross service boundaries (HTTP bodies and broker messages).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Category {
    pub slug: String,
    pub name: String,
    pub products: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CartLine {
    pub sku: String,
    pub name: String,
    pub qty: u32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cart {
    pub lines: Vec<CartLine>,
    pub total_cents: i64,
}

/// Published by the orders outbox relay when an order is paid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderPaid {
    pub order_id: String,
    pub user_id: u64,
    pub total_cents: i64,
}

pub const ORDER_STATUSES: [&str; 4] = ["PENDING", "PAID", "PAYMENT_FAILED", "DISPATCHED"];
