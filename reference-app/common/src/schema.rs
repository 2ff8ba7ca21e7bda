//! The shop's tables. Every service applies the whole schema idempotently at
//! start (CREATE TABLE IF NOT EXISTS), so start order does not matter.

pub const STATEMENTS: &[&str] = &[
    r"CREATE TABLE IF NOT EXISTS users (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(200) NOT NULL,
        email VARCHAR(254) NOT NULL,
        password_hash VARCHAR(255) NOT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        UNIQUE KEY users_email (email)
    ) ENGINE=InnoDB",
    r"CREATE TABLE IF NOT EXISTS categories (
        id INT UNSIGNED NOT NULL PRIMARY KEY,
        slug VARCHAR(64) NOT NULL,
        name VARCHAR(128) NOT NULL,
        UNIQUE KEY categories_slug (slug)
    ) ENGINE=InnoDB",
    r"CREATE TABLE IF NOT EXISTS products (
        sku VARCHAR(32) NOT NULL PRIMARY KEY,
        category_id INT UNSIGNED NOT NULL,
        name VARCHAR(200) NOT NULL,
        description TEXT NOT NULL,
        price_cents BIGINT NOT NULL,
        KEY products_category (category_id, sku)
    ) ENGINE=InnoDB",
    r"CREATE TABLE IF NOT EXISTS orders (
        id CHAR(36) NOT NULL PRIMARY KEY,
        user_id BIGINT UNSIGNED NOT NULL,
        idempotency_key VARCHAR(128) NOT NULL,
        status VARCHAR(16) NOT NULL,
        total_cents BIGINT NOT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        paid_at TIMESTAMP(3) NULL,
        UNIQUE KEY orders_idempotency (user_id, idempotency_key),
        KEY orders_status (status, paid_at)
    ) ENGINE=InnoDB",
    r"CREATE TABLE IF NOT EXISTS order_lines (
        order_id CHAR(36) NOT NULL,
        sku VARCHAR(32) NOT NULL,
        name VARCHAR(200) NOT NULL,
        qty INT UNSIGNED NOT NULL,
        unit_price_cents BIGINT NOT NULL,
        PRIMARY KEY (order_id, sku)
    ) ENGINE=InnoDB",
    r"CREATE TABLE IF NOT EXISTS outbox (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        order_id CHAR(36) NOT NULL,
        event_type VARCHAR(64) NOT NULL,
        payload TEXT NOT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        sent_at TIMESTAMP(3) NULL,
        KEY outbox_unsent (sent_at, id)
    ) ENGINE=InnoDB",
    r"CREATE TABLE IF NOT EXISTS shipments (
        order_id CHAR(36) NOT NULL PRIMARY KEY,
        carrier VARCHAR(64) NOT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
    ) ENGINE=InnoDB",
];
