// The storefront: a small single-page app on the shop's JSON API.
"use strict";

const view = document.getElementById("view");
const state = { token: localStorage.getItem("token"), email: localStorage.getItem("email") };

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function money(cents) { return "$" + (cents / 100).toFixed(2); }
function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text; t.style.display = "block";
  setTimeout(() => { t.style.display = "none"; }, 2500);
}

async function api(method, path, body, extraHeaders) {
  const headers = Object.assign({ "Accept": "application/json" }, extraHeaders || {});
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (res.status === 401 && state.token) { signOut(); }
  if (!res.ok) throw new Error((data && data.message) || res.statusText);
  return data;
}

function signOut() {
  state.token = null; state.email = null;
  localStorage.removeItem("token"); localStorage.removeItem("email");
  renderNav();
}
function renderNav() {
  document.getElementById("account-link").textContent = state.token ? state.email : "Sign in";
}
function needLogin() {
  view.innerHTML = '<p>Please <a href="#/account">sign in</a> first.</p>';
}

async function home(category, page) {
  page = page || 1;
  const [cats, list] = await Promise.all([
    api("GET", "/api/catalogue/categories"),
    api("GET", "/api/catalogue/products?page=" + page + (category ? "&category=" + encodeURIComponent(category) : "")),
  ]);
  const pages = Math.max(1, Math.ceil(list.total / list.page_size));
  const base = category ? "#/category/" + category + "/" : "#/page/";
  view.innerHTML =
    '<div class="categories"><a href="#/" class="' + (category ? "" : "active") + '">All</a>' +
    cats.map(c => '<a class="' + (c.slug === category ? "active" : "") + '" href="#/category/' + esc(c.slug) + '/1">' +
      esc(c.name) + " (" + c.products + ")</a>").join("") + "</div>" +
    '<div class="grid">' + list.products.map(p =>
      '<div class="card"><a href="#/product/' + esc(p.sku) + '"><h3>' + esc(p.name) + "</h3></a>" +
      '<div class="price">' + money(p.price_cents) + '</div><div>' + esc(p.category) + "</div>" +
      '<button data-add="' + esc(p.sku) + '">Add to cart</button></div>').join("") + "</div>" +
    '<div class="pager">' + (page > 1 ? '<a href="' + base + (page - 1) + '">‹ Previous</a>' : "") +
    "<span>Page " + page + " of " + pages + "</span>" +
    (page < pages ? '<a href="' + base + (page + 1) + '">Next ›</a>' : "") + "</div>";
}

async function product(sku) {
  const p = await api("GET", "/api/catalogue/products/" + encodeURIComponent(sku));
  view.innerHTML = '<div class="card"><h2>' + esc(p.name) + "</h2><p>" + esc(p.description) + "</p>" +
    '<p class="price">' + money(p.price_cents) + "</p><p>SKU " + esc(p.sku) + " · " + esc(p.category) + "</p>" +
    '<label>Quantity <input id="qty" type="number" min="1" max="99" value="1"></label> ' +
    '<button id="add">Add to cart</button></div>';
  document.getElementById("add").onclick = () => addToCart(sku, Number(document.getElementById("qty").value));
}

async function addToCart(sku, qty) {
  if (!state.token) { location.hash = "#/account"; return; }
  try {
    const cart = await api("GET", "/api/cart");
    const line = cart.lines.find(l => l.sku === sku);
    await api("PUT", "/api/cart/items/" + encodeURIComponent(sku), { qty: (line ? line.qty : 0) + (qty || 1) });
    toast("Added to cart");
  } catch (e) { toast(e.message); }
}

async function cart() {
  if (!state.token) return needLogin();
  const c = await api("GET", "/api/cart");
  if (!c.lines.length) { view.innerHTML = '<p>Your cart is empty. <a href="#/">Keep shopping</a>.</p>'; return; }
  view.innerHTML = "<h2>Your cart</h2><table><tr><th>Item</th><th>Qty</th><th>Price</th><th>Total</th><th></th></tr>" +
    c.lines.map(l => "<tr><td>" + esc(l.name) + "</td><td>" +
      '<input type="number" min="1" max="99" value="' + l.qty + '" data-qty="' + esc(l.sku) + '"></td><td>' +
      money(l.unit_price_cents) + "</td><td>" + money(l.line_total_cents) + "</td><td>" +
      '<button class="secondary" data-remove="' + esc(l.sku) + '">Remove</button></td></tr>').join("") +
    "<tr><th colspan=3>Total</th><th>" + money(c.total_cents) + "</th><th></th></tr></table>" +
    '<p><button id="checkout">Check out</button> <button class="secondary" id="clear">Empty cart</button></p>';
  document.getElementById("checkout").onclick = checkout;
  document.getElementById("clear").onclick = async () => { await api("DELETE", "/api/cart"); route(); };
}

async function checkout() {
  const key = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  const button = document.getElementById("checkout");
  button.disabled = true; button.textContent = "Paying…";
  try {
    const order = await api("POST", "/api/orders", {}, { "Idempotency-Key": key });
    location.hash = "#/order/" + order.order_id;
  } catch (e) { toast(e.message); button.disabled = false; button.textContent = "Check out"; }
}

async function orders() {
  if (!state.token) return needLogin();
  const list = await api("GET", "/api/orders");
  view.innerHTML = "<h2>Your orders</h2>" + (list.length ? "<table><tr><th>Order</th><th>Placed</th><th>Total</th><th>Status</th></tr>" +
    list.map(o => '<tr><td><a href="#/order/' + esc(o.order_id) + '">' + esc(o.order_id.slice(0, 8)) + "…</a></td><td>" +
      esc(new Date(o.created_at).toLocaleString()) + "</td><td>" + money(o.total_cents) + '</td><td class="status">' +
      esc(o.status) + "</td></tr>").join("") + "</table>" : "<p>No orders yet.</p>");
}

async function order(id) {
  if (!state.token) return needLogin();
  const [o, s] = await Promise.all([api("GET", "/api/orders/" + id), api("GET", "/api/shipping/" + id)]);
  view.innerHTML = "<h2>Order " + esc(o.order_id) + '</h2><p>Status: <span class="status" id="order-status">' + esc(o.status) +
    "</span>" + (s.dispatched ? " · shipped with " + esc(s.carrier) : "") + "</p><table>" +
    o.lines.map(l => "<tr><td>" + esc(l.name) + "</td><td>× " + l.qty + "</td><td>" + money(l.unit_price_cents * l.qty) + "</td></tr>").join("") +
    "<tr><th colspan=2>Total</th><th>" + money(o.total_cents) + "</th></tr></table>";
  if (o.status !== "DISPATCHED" && location.hash === "#/order/" + id) setTimeout(() => { if (location.hash === "#/order/" + id) route(); }, 1500);
}

function account() {
  if (state.token) {
    view.innerHTML = "<p>Signed in as " + esc(state.email) + '.</p><button id="signout">Sign out</button>';
    document.getElementById("signout").onclick = () => { signOut(); route(); };
    return;
  }
  view.innerHTML = '<h2>Sign in</h2><form id="login"><input name="email" type="email" placeholder="Email" required>' +
    '<input name="password" type="password" placeholder="Password" required><button>Sign in</button></form>' +
    '<h2>New here?</h2><form id="register"><input name="name" placeholder="Name" required>' +
    '<input name="email" type="email" placeholder="Email" required>' +
    '<input name="password" type="password" placeholder="Password (8+ characters)" minlength="8" required>' +
    "<button>Create account</button></form>";
  const login = async (email, password) => {
    const t = await api("POST", "/api/users/login", { email, password });
    state.token = t.token; state.email = email;
    localStorage.setItem("token", t.token); localStorage.setItem("email", email);
    renderNav(); location.hash = "#/";
  };
  document.getElementById("login").onsubmit = async ev => {
    ev.preventDefault(); const f = ev.target;
    try { await login(f.email.value, f.password.value); } catch (e) { toast(e.message); }
  };
  document.getElementById("register").onsubmit = async ev => {
    ev.preventDefault(); const f = ev.target;
    try {
      await api("POST", "/api/users/register", { name: f.name.value, email: f.email.value, password: f.password.value });
      await login(f.email.value, f.password.value);
    } catch (e) { toast(e.message); }
  };
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  try {
    switch (parts[0]) {
      case "": return await home(null, 1);
      case "page": return await home(null, Number(parts[1]) || 1);
      case "category": return await home(parts[1], Number(parts[2]) || 1);
      case "product": return await product(decodeURIComponent(parts[1]));
      case "cart": return await cart();
      case "orders": return await orders();
      case "order": return await order(parts[1]);
      case "account": return account();
      default: view.innerHTML = "<p>Page not found.</p>";
    }
  } catch (e) {
    view.innerHTML = '<p>Something went wrong: ' + esc(e.message) + '. <a href="#/">Back to the shop</a></p>';
  }
}

view.addEventListener("click", ev => {
  const add = ev.target.getAttribute("data-add");
  if (add) addToCart(add, 1);
  const remove = ev.target.getAttribute("data-remove");
  if (remove) api("DELETE", "/api/cart/items/" + encodeURIComponent(remove)).then(route, e => toast(e.message));
});
view.addEventListener("change", ev => {
  const sku = ev.target.getAttribute("data-qty");
  if (sku) api("PUT", "/api/cart/items/" + encodeURIComponent(sku), { qty: Number(ev.target.value) }).then(route, e => toast(e.message));
});
window.addEventListener("hashchange", route);
renderNav();
route();
