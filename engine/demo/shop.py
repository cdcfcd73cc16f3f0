"""A small shop database and a live write workload, for the demo and the tests."""

from __future__ import annotations

import random
import threading
import time

import psycopg

SCHEMA_SQL = """
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%');
CREATE TABLE customers (
    id          bigserial PRIMARY KEY,
    email       email_address NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    tags        text[],
    profile     jsonb
);
CREATE TABLE products (
    id          serial PRIMARY KEY,
    sku         uuid NOT NULL DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    price       numeric(10,2) NOT NULL,
    weight_kg   real,
    active      boolean NOT NULL DEFAULT true
);
CREATE TABLE orders (
    id           bigserial PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    status       order_status NOT NULL DEFAULT 'new',
    total        numeric(12,2) NOT NULL DEFAULT 0,
    placed_at    timestamptz NOT NULL DEFAULT now(),
    ship_by      date,
    handling     interval
);
CREATE TABLE "Order Items" (
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line        int NOT NULL,
    product_id  int NOT NULL REFERENCES products (id),
    quantity    smallint NOT NULL,
    unit_price  numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, line)
);
"""

SEED_SQL = """
INSERT INTO customers (email, name, tags, profile)
SELECT 'user' || g || '@example.com', 'Customer ' || g,
       ARRAY['tier' || (g % 3), CASE WHEN g % 5 = 0 THEN 'vip' END],
       jsonb_build_object('visits', g % 17, 'newsletter', g % 2 = 0)
FROM generate_series(1, {customers}) g;
INSERT INTO products (name, price, weight_kg)
SELECT 'Product ' || g, round((random() * 200 + 1)::numeric, 2), round((random() * 10)::numeric, 3)::real
FROM generate_series(1, {products}) g;
INSERT INTO orders (customer_id, status, total, placed_at, ship_by, handling)
SELECT 1 + (g % {customers}), (ARRAY['new','paid','shipped']::order_status[])[1 + g % 3], 0,
       now() - (g || ' minutes')::interval, current_date + (g % 7), ((g % 48) || ' hours')::interval
FROM generate_series(1, {orders}) g;
INSERT INTO "Order Items" (order_id, line, product_id, quantity, unit_price)
SELECT o.id, l, 1 + ((o.id * l) % {products}), 1 + (o.id + l) % 4, p.price
FROM orders o CROSS JOIN generate_series(1, 3) l
JOIN products p ON p.id = 1 + ((o.id * l) % {products});
UPDATE orders o SET total = s.t
FROM (SELECT order_id, sum(quantity * unit_price) t FROM "Order Items" GROUP BY order_id) s
WHERE s.order_id = o.id;
"""

DEMO_TABLES = ("public.customers", "public.products", "public.orders", 'public."Order Items"')


def create_shop(dsn: str, *, customers: int = 500, products: int = 60, orders: int = 2000) -> None:
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute(SCHEMA_SQL)
        # sizes are ints, formatted in: a multi-statement script cannot take bound parameters
        seed = SEED_SQL.format(customers=int(customers), products=int(products), orders=int(orders))
        conn.execute(seed)


class ShopWorkload(threading.Thread):
    """Places, pays, ships and cancels orders at about ``rate`` transactions per second."""

    def __init__(self, dsn: str, rate: float = 200.0, seed: int | None = None) -> None:
        super().__init__(name="shop-workload", daemon=True)
        self._dsn = dsn
        self._rate = rate
        self._stop_event = threading.Event()
        self._rand = random.Random(seed)
        self.transactions = 0
        self.error: Exception | None = None

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            with psycopg.connect(self._dsn, autocommit=False) as conn:
                row = conn.execute("SELECT max(id) FROM customers").fetchone()
                customers = int(row[0]) if row and row[0] else 1
                row = conn.execute("SELECT max(id) FROM products").fetchone()
                products = int(row[0]) if row and row[0] else 1
                conn.commit()
                interval = 1.0 / self._rate if self._rate > 0 else 0.0
                next_at = time.monotonic()
                while not self._stop_event.is_set():
                    try:
                        self._one(conn, customers, products)
                        conn.commit()
                        self.transactions += 1
                    except psycopg.errors.Error as exc:  # e.g. a lost race on a random row: skip it
                        conn.rollback()
                        self.error = exc
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self._stop_event.wait(delay)
                    elif delay < -1.0:
                        next_at = time.monotonic()
        except Exception as exc:  # shown by the demo; the demo keeps replicating what was written
            self.error = exc

    def _one(self, conn: psycopg.Connection, customers: int, products: int) -> None:
        r = self._rand.random()
        if r < 0.45:
            cust = self._rand.randint(1, customers)
            row = conn.execute(
                "INSERT INTO orders (customer_id, ship_by, handling) VALUES (%s, current_date + %s, %s) RETURNING id",
                (cust, self._rand.randint(1, 9), f"{self._rand.randint(1, 72)} hours"),
            ).fetchone()
            assert row is not None
            lines = self._rand.randint(1, 4)
            for line in range(1, lines + 1):
                conn.execute(
                    'INSERT INTO "Order Items" (order_id, line, product_id, quantity, unit_price) '
                    "SELECT %s, %s, id, %s, price FROM products WHERE id = %s",
                    (row[0], line, self._rand.randint(1, 5), self._rand.randint(1, products)),
                )
            conn.execute(
                'UPDATE orders SET total = (SELECT sum(quantity * unit_price) FROM "Order Items" WHERE order_id = %s) '
                "WHERE id = %s",
                (row[0], row[0]),
            )
        elif r < 0.80:
            conn.execute(
                "UPDATE orders SET status = CASE status WHEN 'new' THEN 'paid' WHEN 'paid' THEN 'shipped' "
                "ELSE status END WHERE id = (SELECT id FROM orders WHERE status IN ('new','paid') "
                "ORDER BY random() LIMIT 1)"
            )
        elif r < 0.92:
            conn.execute(
                "UPDATE customers SET profile = jsonb_set(coalesce(profile, '{}'), '{visits}', "
                "to_jsonb(coalesce((profile->>'visits')::int, 0) + 1)) WHERE id = %s",
                (self._rand.randint(1, customers),),
            )
        elif r < 0.97:
            conn.execute(
                "UPDATE products SET price = round(price * %s::numeric, 2) WHERE id = %s",
                (round(self._rand.uniform(0.9, 1.1), 2), self._rand.randint(1, products)),
            )
        else:
            conn.execute(
                "DELETE FROM orders WHERE id = (SELECT id FROM orders WHERE status = 'new' ORDER BY random() LIMIT 1)"
            )
