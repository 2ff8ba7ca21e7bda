//! The catalogue service: categories, products by page and category, product
//! detail. MariaDB is the source of truth; Redis is a read-through cache with
//! a TTL. The cache is optional: when Redis is down, reads go to the database
//! and the service stays ready. With a read replica (`mysql_read_url`) the
//! reads go there, and to the writer while the replica does not answer.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, extract::State, routing::get};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use shop_common::{
    ApiError, ApiResult,
    cache::Redis,
    db::Database,
    extract::{Json, Path, Query},
    model::{Category, Product},
    server::{Kit, Service},
};
use sqlx::MySqlPool;

pub const PAGE_SIZE: i64 = 24;

#[derive(Clone)]
struct AppState {
    db: Database,
    reader: Option<Reader>,
    cache: Arc<Redis>,
    ttl: Duration,
    metrics: Arc<shop_common::metrics::Metrics>,
}

pub async fn build(kit: Kit) -> anyhow::Result<Service> {
    let db = Database::connect_lazy(&kit.settings)?;
    let seed = kit.settings.seed_products;
    db.bootstrap(kit.shutdown.clone(), move |pool| async move {
        seed_catalogue(&pool, seed).await
    });
    let reader = Database::connect_reader(&kit.settings)?;
    let cache = Arc::new(Redis::new(&kit.settings)?);
    let state = AppState {
        db: db.clone(),
        reader: reader.clone().map(Reader::new),
        cache: cache.clone(),
        ttl: kit.settings.cache_ttl,
        metrics: kit.metrics(),
    };
    let routes = Router::new()
        .route("/api/catalogue/categories", get(categories))
        .route("/api/catalogue/products", get(products))
        .route("/api/catalogue/products/{sku}", get(product))
        .with_state(state);
    let probe: shop_common::health::ReadyProbe = Arc::new(move || {
        let (db, reader, cache) = (db.clone(), reader.clone(), cache.clone());
        Box::pin(async move {
            let mut checks = vec![db.check().await, cache.check(false).await];
            if let Some(reader) = reader {
                // Not required: the reads fall back to the writer.
                checks.push(reader.check_as("mariadb-replica", false).await);
            }
            checks
        })
    });
    Ok(Service { routes, probe })
}

/// After the replica fails a read, the reads go to the writer this long
/// before the replica is tried again: one slow failure, not one per read.
const READER_BACKOFF: Duration = Duration::from_secs(5);

/// The read replica and until when it is passed over.
#[derive(Clone)]
struct Reader {
    db: Database,
    passed_over_until: Arc<Mutex<Option<Instant>>>,
}

impl Reader {
    fn new(db: Database) -> Self {
        Self {
            db,
            passed_over_until: Arc::default(),
        }
    }

    fn usable(&self) -> bool {
        let until = self
            .passed_over_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.is_none_or(|t| Instant::now() >= t)
    }

    fn failed(&self, error: &ApiError) {
        let mut until = self
            .passed_over_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if until.is_none_or(|t| Instant::now() >= t) {
            tracing::warn!(%error, backoff_s = READER_BACKOFF.as_secs(),
                "the read replica failed a read; reading from the writer");
        }
        *until = Some(Instant::now() + READER_BACKOFF);
    }
}

impl AppState {
    /// Runs `load` on the read replica when there is one and it is not
    /// passed over, else (or when the replica's answer is a server-side
    /// error: it is down, lagging behind a schema, or timed out) on the
    /// writer. Either way retried once on a broken connection.
    async fn read<T, F, Fut>(&self, mut load: F) -> ApiResult<T>
    where
        F: FnMut(MySqlPool) -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        if let Some(reader) = self.reader.as_ref().filter(|r| r.usable()) {
            match reader.db.retry_once(|| load(reader.db.pool.clone())).await {
                Err(e) if e.status().is_server_error() => reader.failed(&e),
                answer => return answer,
            }
        }
        self.db.retry_once(|| load(self.db.pool.clone())).await
    }

    /// Read-through: the cached JSON if Redis has it, else `load` (see
    /// `read`) and cache it.
    async fn cached<T, F, Fut>(&self, key: String, load: F) -> ApiResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(MySqlPool) -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        let mut conn = match self.cache.conn().await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "cache unavailable; reading the database");
                None
            }
        };
        if let Some(c) = conn.as_mut()
            && let Ok(Some(hit)) = c.get::<_, Option<String>>(&key).await
            && let Ok(value) = serde_json::from_str(&hit)
        {
            self.metrics.cache_lookup("hit");
            return Ok(value);
        }
        self.metrics.cache_lookup(if conn.is_some() {
            "miss"
        } else {
            "unavailable"
        });
        let value = self.read(load).await?;
        if let Some(c) = conn.as_mut()
            && let Ok(text) = serde_json::to_string(&value)
        {
            let _: Result<(), _> = c.set_ex(&key, text, self.ttl.as_secs().max(1)).await;
        }
        Ok(value)
    }
}

async fn categories(State(state): State<AppState>) -> ApiResult<Json<Vec<Category>>> {
    let list = state
        .cached("catalogue:v1:categories".into(), |pool| async move {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT c.slug, c.name, COUNT(p.sku) FROM categories c
                 LEFT JOIN products p ON p.category_id = c.id
                 GROUP BY c.id, c.slug, c.name ORDER BY c.id",
            )
            .fetch_all(&pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(slug, name, products)| Category {
                    slug,
                    name,
                    products,
                })
                .collect())
        })
        .await?;
    Ok(Json(list))
}

#[derive(Deserialize)]
struct ProductQuery {
    category: Option<String>,
    page: Option<i64>,
}

#[derive(Serialize, Deserialize)]
pub struct ProductPage {
    pub page: i64,
    pub page_size: i64,
    pub total: i64,
    pub products: Vec<Product>,
}

const PRODUCT_COLUMNS: &str =
    "SELECT p.sku, p.name, p.description, c.slug AS category, p.price_cents
     FROM products p JOIN categories c ON c.id = p.category_id";

#[derive(sqlx::FromRow)]
struct ProductRow {
    sku: String,
    name: String,
    description: String,
    category: String,
    price_cents: i64,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            sku: r.sku,
            name: r.name,
            description: r.description,
            category: r.category,
            price_cents: r.price_cents,
        }
    }
}

async fn products(
    State(state): State<AppState>,
    Query(q): Query<ProductQuery>,
) -> ApiResult<Json<ProductPage>> {
    let page = q.page.unwrap_or(1);
    if !(1..=10_000).contains(&page) {
        return Err(ApiError::bad_request("page must be between 1 and 10000"));
    }
    let category = q.category.filter(|c| !c.is_empty());
    if let Some(c) = &category
        && (c.len() > 64 || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'))
    {
        return Err(ApiError::bad_request(
            "category must be a slug such as 'books'",
        ));
    }
    let key = format!(
        "catalogue:v1:products:{}:{page}",
        category.as_deref().unwrap_or("*")
    );
    let category = &category;
    let result = state
        .cached(key, |pool| async move {
            let offset = (page - 1) * PAGE_SIZE;
            // One connection for the page's two or three queries: each
            // acquisition costs a ping when it goes back to the pool.
            let mut conn = pool.acquire().await?;
            let (total, rows): (i64, Vec<ProductRow>) = match category {
                Some(slug) => {
                    let known: Option<(u32,)> =
                        sqlx::query_as("SELECT id FROM categories WHERE slug = ?")
                            .bind(slug)
                            .fetch_optional(&mut *conn)
                            .await?;
                    let Some((id,)) = known else {
                        return Err(ApiError::not_found(format!("no category '{slug}'")));
                    };
                    let (total,): (i64,) =
                        sqlx::query_as("SELECT COUNT(*) FROM products WHERE category_id = ?")
                            .bind(id)
                            .fetch_one(&mut *conn)
                            .await?;
                    let rows = sqlx::query_as(&format!(
                        "{PRODUCT_COLUMNS} WHERE p.category_id = ? ORDER BY p.sku LIMIT ? OFFSET ?"
                    ))
                    .bind(id)
                    .bind(PAGE_SIZE)
                    .bind(offset)
                    .fetch_all(&mut *conn)
                    .await?;
                    (total, rows)
                }
                None => {
                    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products")
                        .fetch_one(&mut *conn)
                        .await?;
                    let rows = sqlx::query_as(&format!(
                        "{PRODUCT_COLUMNS} ORDER BY p.sku LIMIT ? OFFSET ?"
                    ))
                    .bind(PAGE_SIZE)
                    .bind(offset)
                    .fetch_all(&mut *conn)
                    .await?;
                    (total, rows)
                }
            };
            Ok(ProductPage {
                page,
                page_size: PAGE_SIZE,
                total,
                products: rows.into_iter().map(Product::from).collect(),
            })
        })
        .await?;
    Ok(Json(result))
}

fn valid_sku(sku: &str) -> bool {
    !sku.is_empty() && sku.len() <= 32 && sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

async fn product(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> ApiResult<Json<Product>> {
    if !valid_sku(&sku) {
        return Err(ApiError::not_found(format!("no product '{sku}'")));
    }
    let key = format!("catalogue:v1:product:{sku}");
    let sku = &sku;
    let found = state
        .cached(key, |pool| async move {
            let row: Option<ProductRow> =
                sqlx::query_as(&format!("{PRODUCT_COLUMNS} WHERE p.sku = ?"))
                    .bind(sku)
                    .fetch_optional(&pool)
                    .await?;
            row.map(Product::from)
                .ok_or_else(|| ApiError::not_found(format!("no product '{sku}'")))
        })
        .await?;
    Ok(Json(found))
}

pub const CATEGORIES: [(&str, &str); 12] = [
    ("books", "Books"),
    ("music", "Music"),
    ("games", "Games"),
    ("garden", "Garden"),
    ("kitchen", "Kitchen"),
    ("outdoor", "Outdoor"),
    ("toys", "Toys"),
    ("tools", "Tools"),
    ("office", "Office"),
    ("sports", "Sports"),
    ("beauty", "Beauty"),
    ("pets", "Pets"),
];

const ADJECTIVES: [&str; 16] = [
    "Sturdy", "Compact", "Classic", "Deluxe", "Handmade", "Eco", "Vintage", "Smart", "Cosy",
    "Bright", "Quiet", "Rugged", "Elegant", "Portable", "Modular", "Organic",
];
const NOUNS: [&str; 12] = [
    "Kit",
    "Set",
    "Box",
    "Pack",
    "Edition",
    "Bundle",
    "Collection",
    "Model",
    "Series",
    "Case",
    "Station",
    "Companion",
];

/// The SKU of the n-th seeded product (0-based), for tests and load scripts.
pub fn seeded_sku(n: u32) -> String {
    format!("SKU-{:05}", n + 1)
}

/// Fills empty catalogue tables. Idempotent and safe to run from several
/// replicas at once (INSERT IGNORE on deterministic keys).
pub async fn seed_catalogue(pool: &MySqlPool, products: u32) -> Result<(), sqlx::Error> {
    let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products")
        .fetch_one(pool)
        .await?;
    if existing > 0 {
        return Ok(());
    }
    for (i, (slug, name)) in CATEGORIES.iter().enumerate() {
        sqlx::query("INSERT IGNORE INTO categories (id, slug, name) VALUES (?, ?, ?)")
            .bind(i as u32 + 1)
            .bind(slug)
            .bind(name)
            .execute(pool)
            .await?;
    }
    let all: Vec<u32> = (0..products).collect();
    for chunk in all.chunks(200) {
        let mut builder = sqlx::QueryBuilder::new(
            "INSERT IGNORE INTO products (sku, category_id, name, description, price_cents) ",
        );
        builder.push_values(chunk, |mut b, &n| {
            let category = n as usize % CATEGORIES.len();
            let name = format!(
                "{} {} {}",
                ADJECTIVES[(n as usize / 7) % ADJECTIVES.len()],
                CATEGORIES[category].1.trim_end_matches('s'),
                NOUNS[(n as usize / 3) % NOUNS.len()]
            );
            b.push_bind(seeded_sku(n))
                .push_bind(category as u32 + 1)
                .push_bind(name.clone())
                .push_bind(format!(
                    "{name}: a dependable choice from our {} range.",
                    CATEGORIES[category].1
                ))
                .push_bind(299 + i64::from((n * 7919) % 19_700));
        });
        builder.build().execute(pool).await?;
    }
    tracing::info!(products, categories = CATEGORIES.len(), "catalogue seeded");
    Ok(())
}
