"""The corpus: Pagila and Chinook (adapted schema files here, see README.md) plus extras.sql, in one
source database; Pagila's rows generated from a seed, Chinook's its own; and a workload of realistic
changes (inserts, updates that leave TOASTed values alone, deletes, key changes across partitions,
partitions created and attached while streaming), the same for every run with the same seed."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

CORPUS_DIR = Path(__file__).resolve().parent
SCHEMA_FILES = ("pagila-schema.sql", "chinook.sql", "extras.sql")
SCHEMAS = ("public", "chinook")
UTC = dt.UTC

# Words that travel badly: accents, CJK, emoji, quotes, backslashes, COPY's markers, control bytes.
WORDS = (
    "film",
    "cinema",
    "Ölgemälde",
    "東京物語",
    "café",
    "naïve",
    "смелый",
    "🎬",
    "παράδοξο",
    "niño",
    "it's",
    'say "cut"',
    "back\\slash",
    "tab\there",
    "new\nline",
    "\\N",
    "NULL",
    "x\n\\.\ny",
    "ß",
    "日本語",
    "Ω≈ç√",
    "emoji👩‍👩‍👧",
    "a,b;c",
    "{braces}",
    "zero\u200bwidth",
    "ﬁ",
    "İstanbul",
    "ı",
)
LANGS = ("en", "de", "ja", "pt", "es")  # pt and es land in film_review_other (DEFAULT)
RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
FEATURES = ("Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes", 'Director\'s "Cut"')
FIRST_PAYMENT = dt.datetime(2022, 1, 1, tzinfo=UTC)
LAST_PAYMENT = dt.datetime(2022, 8, 1, tzinfo=UTC)  # the partitions the schema has


def words(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def long_text(rnd: random.Random, chars: int) -> str:
    """Text of at least ``chars`` characters that compresses poorly, so PostgreSQL stores it out of
    line (TOAST) rather than compressed inline."""
    parts: list[str] = []
    size = 0
    while size < chars:
        part = f"{rnd.choice(WORDS)} {rnd.getrandbits(64):016x}"
        parts.append(part)
        size += len(part) + 1
    return " ".join(parts)


def maybe(rnd: random.Random, p_null: float, value: Callable[[], Any]) -> Any:
    return None if rnd.random() < p_null else value()


def moment(rnd: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """A microsecond-precise instant in [start, end)."""
    span = int((end - start).total_seconds() * 1_000_000)
    return start + dt.timedelta(microseconds=rnd.randrange(span))


def _run_file(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute((CORPUS_DIR / name).read_text(encoding="utf-8"))


def create_corpus(dsn: str, scale: int = 1, seed: int = 1) -> None:
    """Create the corpus's schemas in ``dsn``'s database and fill them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in SCHEMA_FILES:
            _run_file(conn, name)
            conn.execute("RESET search_path")  # the files set their own
    with psycopg.connect(dsn) as conn:
        _fill_pagila(conn, random.Random(seed), scale)
        _fill_extras(conn, random.Random(seed + 1), scale)
        conn.commit()


def _insert(conn: psycopg.Connection[Any], table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    schema, name = table.split(".")
    cols = [c.strip() for c in columns.split(",")]
    stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(schema, name),
        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        sql.SQL(", ").join(sql.Placeholder() for _ in cols),
    )
    with conn.cursor() as cur:
        cur.executemany(stmt, rows)


def _fill_pagila(conn: psycopg.Connection[Any], rnd: random.Random, scale: int) -> None:
    languages = ["English", "Italian", "Japanese", "Mandarin", "French", "German"]
    _insert(conn, "public.language", "language_id, name", [(i + 1, n) for i, n in enumerate(languages)])
    categories = ["Action", "Animation", "Children", "Classics", "Comedy", "Documentary", "Drama", "Family",
                  "Foreign", "Games", "Horror", "Music", "New", "Sci-Fi", "Sports", "Travel"]  # fmt: skip
    _insert(conn, "public.category", "category_id, name", [(i + 1, n) for i, n in enumerate(categories)])
    countries = ["Türkiye", "日本", "España", "Россия", "Ελλάδα", "Brasil", "Côte d'Ivoire", "México",
                 "Österreich", "Ísland", "Việt Nam", "Deutschland", "United States", "Réunion"]  # fmt: skip
    _insert(conn, "public.country", "country_id, country", [(i + 1, n) for i, n in enumerate(countries)])
    n_city = 40 * scale
    _insert(
        conn,
        "public.city",
        "city_id, city, country_id",
        [(i, f"{words(rnd, 1).title()} {i}", rnd.randint(1, len(countries))) for i in range(1, n_city + 1)],
    )
    n_addr = 150 * scale
    _insert(
        conn,
        "public.address",
        "address_id, address, address2, district, city_id, postal_code, phone",
        [
            (
                i,
                f"{rnd.randint(1, 9999)} {words(rnd, 2)} Street",
                maybe(rnd, 0.8, lambda: f"Apt {rnd.randint(1, 99)}"),
                words(rnd, 1),
                rnd.randint(1, n_city),
                maybe(rnd, 0.1, lambda: f"{rnd.randint(0, 99999):05d}"),
                f"+{rnd.randint(1, 99)} {rnd.randint(10**8, 10**9 - 1)}",
            )
            for i in range(1, n_addr + 1)
        ],
    )
    # store.manager_staff_id has no foreign key in Pagila (staff refers to store), so stores first
    _insert(conn, "public.store", "store_id, manager_staff_id, address_id", [(1, 1, 1), (2, 2, 2)])
    _insert(
        conn,
        "public.staff",
        "staff_id, first_name, last_name, address_id, email, store_id, active, username, password, picture",
        [
            # pictures are random bytes: incompressible, so always stored out of line
            (
                1,
                "Mike",
                "Hillyer",
                3,
                "mike.hillyer@sakilastaff.com",
                1,
                True,
                "Mike",
                "8cb2237d0679ca88db6464eac60da96345513964",
                rnd.randbytes(30_000),
            ),
            (2, "Jon", "Stephens", 4, None, 2, True, "Jon", None, rnd.randbytes(12_000)),
            (3, "Ágnes", "Öztürk", 5, "agnes@sakilastaff.com", 2, False, "ágnes", None, None),
        ],
    )
    n_actor = 100 * scale
    _insert(
        conn,
        "public.actor",
        "actor_id, first_name, last_name",
        [(i, words(rnd, 1).upper(), f"{words(rnd, 1)}-{i}".upper()) for i in range(1, n_actor + 1)],
    )
    n_film = 200 * scale
    films = []
    for i in range(1, n_film + 1):
        description = (
            long_text(rnd, rnd.choice((3_000, 9_000))) if i % 4 == 0 else maybe(rnd, 0.1, lambda: words(rnd, 12))
        )
        films.append(
            (
                i,
                f"{words(rnd, 2).title()} {i}",
                description,
                maybe(rnd, 0.05, lambda: rnd.randint(1901, 2155)),
                rnd.randint(1, 6),
                maybe(rnd, 0.8, lambda: rnd.randint(1, 6)),
                rnd.randint(3, 7),
                Decimal(rnd.choice(("0.99", "2.99", "4.99"))),
                maybe(rnd, 0.05, lambda: rnd.randint(46, 185)),
                Decimal(f"{rnd.randint(9, 29)}.99"),
                maybe(rnd, 0.05, lambda: rnd.choice(RATINGS)),
                maybe(rnd, 0.1, lambda: rnd.sample(FEATURES, rnd.randint(0, 4))),
            )
        )
    _insert(
        conn,
        "public.film",
        "film_id, title, description, release_year, language_id, original_language_id, rental_duration, "
        "rental_rate, length, replacement_cost, rating, special_features",
        films,
    )
    pairs = {(rnd.randint(1, n_actor), f) for f in range(1, n_film + 1) for _ in range(rnd.randint(1, 6))}
    _insert(conn, "public.film_actor", "actor_id, film_id", sorted(pairs))
    _insert(
        conn, "public.film_category", "film_id, category_id", [(f, rnd.randint(1, 16)) for f in range(1, n_film + 1)]
    )
    _insert(
        conn,
        "public.film_embedding",
        "film_id, embedding",
        [(f, [rnd.uniform(-1, 1) for _ in range(20)]) for f in range(1, n_film + 1, 2)],
    )
    n_inv = 2 * n_film
    _insert(
        conn,
        "public.inventory",
        "inventory_id, film_id, store_id",
        [(i, rnd.randint(1, n_film), rnd.randint(1, 2)) for i in range(1, n_inv + 1)],
    )
    n_cust = 200 * scale
    _insert(
        conn,
        "public.customer",
        "customer_id, store_id, first_name, last_name, email, address_id, activebool, create_date, active",
        [
            (
                i,
                rnd.randint(1, 2),
                words(rnd, 1).title(),
                words(rnd, 1).upper(),
                maybe(rnd, 0.1, lambda i=i: f"customer.{i}@sakilacustomer.org"),
                rnd.randint(5, n_addr),
                rnd.random() < 0.9,
                dt.date(2022, 1, 1) - dt.timedelta(days=rnd.randint(0, 4000)),
                maybe(rnd, 0.05, lambda: rnd.randint(0, 1)),
            )
            for i in range(1, n_cust + 1)
        ],
    )
    n_rental = 600 * scale
    rentals = []
    for i in range(1, n_rental + 1):
        start = moment(rnd, FIRST_PAYMENT, LAST_PAYMENT)
        back = maybe(rnd, 0.1, lambda start=start: start + dt.timedelta(hours=rnd.randint(1, 240)))
        rentals.append((i, start, i, rnd.randint(1, n_cust), back, rnd.randint(1, 2)))  # inventory i % n_inv
    rentals = [(r[0], r[1], (r[2] - 1) % n_inv + 1, *r[3:]) for r in rentals]
    _insert(conn, "public.rental", "rental_id, rental_date, inventory_id, customer_id, return_date, staff_id", rentals)
    _insert(
        conn,
        "public.payment",
        "payment_id, customer_id, staff_id, rental_id, amount, payment_date",
        [
            (i, r[3], r[5], r[0], Decimal(rnd.randint(0, 1199)) / 100, r[1] + dt.timedelta(minutes=rnd.randint(0, 600)))
            for i, r in enumerate(rentals, start=1)
            if r[1] + dt.timedelta(minutes=600) < LAST_PAYMENT
        ],
    )
    # the rows above carry their ids, so the sequences continue after them
    for table in ("rental", "payment", "film", "customer", "actor", "inventory"):
        column = f"{table}_id"
        conn.execute(
            sql.SQL("SELECT setval({}, (SELECT max({}) FROM {}))").format(
                sql.Literal(f"public.{table}_{column}_seq"), sql.Identifier(column), sql.Identifier("public", table)
            )
        )
    n_review = 250 * scale
    _insert(
        conn,
        "public.film_review",
        "review_id, lang, film_id, customer_id, rating, stars, title, body, tags, posted_at",
        [_review(rnd, i, rnd.choice(LANGS), n_film, n_cust) for i in range(1, n_review + 1)],
    )


def _review(rnd: random.Random, i: int, lang: str, n_film: int, n_cust: int) -> tuple[Any, ...]:
    return (
        i,
        lang,
        rnd.randint(1, n_film),
        maybe(rnd, 0.2, lambda: rnd.randint(1, n_cust)),
        maybe(rnd, 0.3, lambda: rnd.choice(RATINGS)),
        maybe(rnd, 0.1, lambda: Decimal(rnd.randint(0, 50)) / 10),
        maybe(rnd, 0.1, lambda: words(rnd, 4)),
        long_text(rnd, rnd.choice((2_500, 6_000, 20_000))) if i % 3 == 0 else maybe(rnd, 0.1, lambda: words(rnd, 30)),
        maybe(rnd, 0.2, lambda: [maybe(rnd, 0.1, lambda: words(rnd, 1)) for _ in range(rnd.randint(0, 5))]),
        moment(rnd, FIRST_PAYMENT, LAST_PAYMENT),
    )


def _rate(rnd: random.Random) -> Decimal:
    """A rate with up to 30 fractional digits, sometimes a large integer part, as feeds quote them."""
    whole = rnd.choice((0, 1, 7, 145, 15_000, 12_345_678_901_234_567_890))
    return Decimal(f"{whole}.{rnd.getrandbits(100) % 10**30:030d}")


CURRENCIES = ("EUR", "JPY", "BRL", "GBP", "IDR", "VND", "CHF", "TRY")


def _fill_extras(conn: psycopg.Connection[Any], rnd: random.Random, scale: int) -> None:
    day = dt.date(2022, 1, 1)
    _insert(
        conn,
        "chinook.exchange_rate",
        "currency_code, rate_date, rate, inverse, source",
        [
            (
                c,
                day + dt.timedelta(days=d),
                _rate(rnd),
                maybe(rnd, 0.3, lambda: _rate(rnd)),
                maybe(rnd, 0.5, lambda: words(rnd, 2)),
            )
            for c in CURRENCIES
            for d in range(20 * scale)
        ],
    )
    invoices = [r[0] for r in conn.execute("SELECT invoice_id FROM chinook.invoice ORDER BY 1").fetchall()]
    _insert(
        conn,
        "chinook.invoice_event",
        "invoice_id, kind, at, payload",
        [
            (
                rnd.choice(invoices),
                rnd.choice(("issued", "paid", "refunded")),
                moment(rnd, FIRST_PAYMENT, LAST_PAYMENT),
                maybe(rnd, 0.2, lambda: Jsonb({"note": words(rnd, 3), "amount": str(_rate(rnd))})),
            )
            for _ in range(100 * scale)
        ],
    )


class Workload:
    """Transactions against the corpus, one per :meth:`step`; steps named in ``SCHEDULE`` also
    change the partitioning while the engine streams."""

    SCHEDULE: ClassVar[dict[int, str]] = {
        4: "CREATE TABLE payment_p2022_08 PARTITION OF payment",
        12: "ATTACH PARTITION payment_p2022_09, a table that already has rows",
        18: "ATTACH PARTITION film_review_fr, a table that already has rows",
    }

    # the partitioned tables that got a partition attached with rows, which only a resync copies
    ATTACHED_WITH_ROWS: ClassVar[tuple[str, ...]] = ("public.payment", "public.film_review")

    def __init__(self, dsn: str, seed: int = 2) -> None:
        self.dsn = dsn
        self.rnd = random.Random(seed)
        self.next_id = 5_000_000
        self.payment_end = LAST_PAYMENT
        self.langs = list(LANGS)

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def step(self, i: int) -> None:
        with psycopg.connect(self.dsn) as conn:
            if i == 4:
                conn.execute(
                    "CREATE TABLE public.payment_p2022_08 PARTITION OF public.payment"
                    " FOR VALUES FROM ('2022-08-01 00:00:00+00') TO ('2022-09-01 00:00:00+00')"
                )
                self.payment_end = dt.datetime(2022, 9, 1, tzinfo=UTC)
            elif i == 12:
                self._attach_payments(conn)
            elif i == 18:
                self._attach_reviews(conn)
            ops = [self._rent, self._pay_late, self._touch_customer, self._reprice_film, self._retitle_film,
                   self._staff, self._review, self._move_payment, self._move_review, self._renumber_actor,
                   self._delete_payment, self._invoice, self._playlist, self._rate, self._event]  # fmt: skip
            for op in ops:
                op(conn)
            conn.commit()

    # Pagila ------------------------------------------------------------------------------------

    def _pick(self, conn: psycopg.Connection[Any], query: str, *args: Any) -> Any:
        rows = conn.execute(query, args).fetchall()
        return self.rnd.choice(rows) if rows else None

    def _rent(self, conn: psycopg.Connection[Any]) -> None:
        """A rental and its payment, in any month that has a partition."""
        rnd = self.rnd
        inv = self._pick(conn, "SELECT inventory_id FROM public.inventory")
        cust = self._pick(conn, "SELECT customer_id FROM public.customer")
        when = moment(rnd, FIRST_PAYMENT, self.payment_end - dt.timedelta(days=1))
        rid = conn.execute(
            "INSERT INTO public.rental (rental_date, inventory_id, customer_id, staff_id) VALUES (%s, %s, %s, %s)"
            " RETURNING rental_id",
            (when, inv[0], cust[0], rnd.randint(1, 2)),
        ).fetchone()
        assert rid is not None
        conn.execute(
            "INSERT INTO public.payment (customer_id, staff_id, rental_id, amount, payment_date)"
            " VALUES (%s, %s, %s, %s, %s)",
            (cust[0], rnd.randint(1, 2), rid[0], Decimal(rnd.randint(0, 1199)) / 100, when),
        )

    def _pay_late(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "UPDATE public.rental SET return_date = rental_date + interval '3 days 4 hours'"
            " WHERE rental_id = (SELECT min(rental_id) FROM public.rental WHERE return_date IS NULL)"
        )

    def _touch_customer(self, conn: psycopg.Connection[Any]) -> None:
        cust = self._pick(conn, "SELECT customer_id FROM public.customer")
        email = maybe(self.rnd, 0.3, lambda: f"{words(self.rnd, 1)}@example.org")
        conn.execute(
            "UPDATE public.customer SET email = %s, activebool = NOT activebool WHERE customer_id = %s",
            (email, cust[0]),
        )

    def _reprice_film(self, conn: psycopg.Connection[Any]) -> None:
        """Only the rate changes: a long description stays as it is (an unchanged TOAST value)."""
        film = self._pick(conn, "SELECT film_id FROM public.film WHERE length(description) > 2000")
        conn.execute("UPDATE public.film SET rental_rate = rental_rate + 1 WHERE film_id = %s", (film[0],))

    def _retitle_film(self, conn: psycopg.Connection[Any]) -> None:
        """The title changes; the trigger recomputes fulltext and last_update."""
        film = self._pick(conn, "SELECT film_id FROM public.film")
        conn.execute(
            "UPDATE public.film SET title = %s, special_features = %s WHERE film_id = %s",
            (f"{words(self.rnd, 3)} {film[0]}", maybe(self.rnd, 0.3, lambda: self.rnd.sample(FEATURES, 2)), film[0]),
        )

    def _staff(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("UPDATE public.staff SET active = NOT active WHERE staff_id = %s", (self.rnd.randint(1, 2),))

    def _review(self, conn: psycopg.Connection[Any]) -> None:
        rnd = self.rnd
        films = conn.execute("SELECT max(film_id) FROM public.film").fetchone()
        custs = conn.execute("SELECT max(customer_id) FROM public.customer").fetchone()
        assert films is not None and custs is not None
        row = _review(rnd, self._id(), rnd.choice(self.langs), films[0], custs[0])
        conn.execute(
            "INSERT INTO public.film_review (review_id, lang, film_id, customer_id, rating, stars, title, body, tags,"
            " posted_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            row,
        )
        # stars only: a long body stays unchanged TOAST
        old = self._pick(conn, "SELECT lang, review_id FROM public.film_review WHERE length(body) > 2000")
        conn.execute(
            "UPDATE public.film_review SET stars = %s WHERE lang = %s AND review_id = %s",
            (Decimal(rnd.randint(0, 50)) / 10, old[0], old[1]),
        )
        gone = self._pick(conn, "SELECT lang, review_id FROM public.film_review")
        conn.execute("DELETE FROM public.film_review WHERE lang = %s AND review_id = %s", (gone[0], gone[1]))

    def _move_payment(self, conn: psycopg.Connection[Any]) -> None:
        """A key change that moves the row to the next month's partition."""
        pay = self._pick(
            conn,
            "SELECT payment_id, payment_date FROM public.payment WHERE payment_date < %s",
            self.payment_end - dt.timedelta(days=32),
        )
        conn.execute(
            "UPDATE public.payment SET payment_date = payment_date + interval '1 month', amount = amount + 0.01"
            " WHERE payment_id = %s AND payment_date = %s",
            (pay[0], pay[1]),
        )

    def _move_review(self, conn: psycopg.Connection[Any]) -> None:
        """A key change that moves a review, long body and all, to another language's partition."""
        old = self._pick(conn, "SELECT lang, review_id FROM public.film_review")
        new_lang = self.rnd.choice([lang for lang in self.langs if lang != old[0]])
        conn.execute(
            "UPDATE public.film_review SET lang = %s WHERE lang = %s AND review_id = %s", (new_lang, old[0], old[1])
        )

    def _renumber_actor(self, conn: psycopg.Connection[Any]) -> None:
        """A primary key change that cascades (ON UPDATE CASCADE) into film_actor's key."""
        actor = self._pick(conn, "SELECT actor_id FROM public.actor WHERE actor_id < 1000000")
        conn.execute("UPDATE public.actor SET actor_id = %s WHERE actor_id = %s", (self._id(), actor[0]))

    def _delete_payment(self, conn: psycopg.Connection[Any]) -> None:
        pay = self._pick(conn, "SELECT payment_id, payment_date, rental_id FROM public.payment")
        conn.execute("DELETE FROM public.payment WHERE payment_id = %s AND payment_date = %s", (pay[0], pay[1]))
        conn.execute(
            "DELETE FROM public.rental r WHERE rental_id = %s"
            " AND NOT EXISTS (SELECT FROM public.payment p WHERE p.rental_id = r.rental_id)",
            (pay[2],),
        )

    def _attach_payments(self, conn: psycopg.Connection[Any]) -> None:
        """September's payments are loaded into a table of their own, then attached with them."""
        conn.execute(
            "CREATE TABLE public.payment_p2022_09 (LIKE public.payment INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        rentals = conn.execute(
            "SELECT rental_id, customer_id FROM public.rental ORDER BY rental_id LIMIT 40"
        ).fetchall()
        start = dt.datetime(2022, 9, 1, tzinfo=UTC)
        for rid, cust in rentals:
            conn.execute(
                "INSERT INTO public.payment_p2022_09 (customer_id, staff_id, rental_id, amount, payment_date)"
                " VALUES (%s, 1, %s, %s, %s)",
                (
                    cust,
                    rid,
                    Decimal(self.rnd.randint(0, 1199)) / 100,
                    moment(self.rnd, start, start + dt.timedelta(days=30)),
                ),
            )
        conn.execute(
            "ALTER TABLE public.payment ATTACH PARTITION public.payment_p2022_09"
            " FOR VALUES FROM ('2022-09-01 00:00:00+00') TO ('2022-10-01 00:00:00+00')"
        )
        self.payment_end = dt.datetime(2022, 10, 1, tzinfo=UTC)

    def _attach_reviews(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "CREATE TABLE public.film_review_fr (LIKE public.film_review INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        films = conn.execute("SELECT max(film_id) FROM public.film").fetchone()
        custs = conn.execute("SELECT max(customer_id) FROM public.customer").fetchone()
        assert films is not None and custs is not None
        for _ in range(15):
            conn.execute(
                "INSERT INTO public.film_review_fr (review_id, lang, film_id, customer_id, rating, stars, title, body,"
                " tags, posted_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                _review(self.rnd, self._id(), "fr", films[0], custs[0]),
            )
        conn.execute("ALTER TABLE public.film_review ATTACH PARTITION public.film_review_fr FOR VALUES IN ('fr')")
        self.langs.append("fr")

    # Chinook -----------------------------------------------------------------------------------

    def _invoice(self, conn: psycopg.Connection[Any]) -> None:
        rnd = self.rnd
        cust = self._pick(conn, "SELECT customer_id, address, city, country FROM chinook.customer")
        inv = self._id()
        tracks = conn.execute("SELECT track_id, unit_price FROM chinook.track ORDER BY random() LIMIT 3").fetchall()
        total = sum((t[1] for t in tracks), Decimal(0))
        conn.execute(
            "INSERT INTO chinook.invoice (invoice_id, customer_id, invoice_date, billing_address, billing_city,"
            " billing_country, total) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (inv, cust[0], dt.datetime(2025, 1, 1) + dt.timedelta(seconds=rnd.randint(0, 10**7)), *cust[1:], total),
        )
        for t in tracks:
            conn.execute(
                "INSERT INTO chinook.invoice_line (invoice_line_id, invoice_id, track_id, unit_price, quantity)"
                " VALUES (%s, %s, %s, %s, 1)",
                (self._id(), inv, t[0], t[1]),
            )
        conn.execute("UPDATE chinook.track SET unit_price = unit_price + 0.10 WHERE track_id = %s", (tracks[0][0],))
        line = self._pick(conn, "SELECT invoice_line_id FROM chinook.invoice_line")
        conn.execute("DELETE FROM chinook.invoice_line WHERE invoice_line_id = %s", (line[0],))

    def _playlist(self, conn: psycopg.Connection[Any]) -> None:
        """A key change in a two-column key: an entry of a playlist points at another track."""
        entry = self._pick(conn, "SELECT playlist_id, track_id FROM chinook.playlist_track WHERE playlist_id = 1")
        other = self._pick(
            conn,
            "SELECT track_id FROM chinook.track t WHERE NOT EXISTS"
            " (SELECT FROM chinook.playlist_track p WHERE p.playlist_id = 1 AND p.track_id = t.track_id)",
        )
        if entry and other:
            conn.execute(
                "UPDATE chinook.playlist_track SET track_id = %s WHERE playlist_id = 1 AND track_id = %s",
                (other[0], entry[1]),
            )

    def _rate(self, conn: psycopg.Connection[Any]) -> None:
        day = conn.execute("SELECT max(rate_date) + 1 FROM chinook.exchange_rate").fetchone()
        assert day is not None
        conn.execute(
            "INSERT INTO chinook.exchange_rate (currency_code, rate_date, rate, source) VALUES (%s, %s, %s, 'feed')",
            (self.rnd.choice(CURRENCIES), day[0], _rate(self.rnd)),
        )
        old = self._pick(conn, "SELECT currency_code, rate_date FROM chinook.exchange_rate")
        conn.execute(
            "UPDATE chinook.exchange_rate SET inverse = %s WHERE currency_code = %s AND rate_date = %s",
            (_rate(self.rnd), old[0], old[1]),
        )

    def _event(self, conn: psycopg.Connection[Any]) -> None:
        inv = self._pick(conn, "SELECT invoice_id FROM chinook.invoice")
        conn.execute(
            "INSERT INTO chinook.invoice_event (invoice_id, kind, at, payload) VALUES (%s, 'paid', now(), %s)",
            (inv[0], Jsonb({"by": words(self.rnd, 2), "cents": self.rnd.randint(0, 10**6)})),
        )
        gone = self._pick(conn, "SELECT event_id FROM chinook.invoice_event")
        conn.execute("DELETE FROM chinook.invoice_event WHERE event_id = %s", (gone[0],))


def pipeline_tables(dsn: str) -> list[str]:
    """Every table of the corpus, partitioned tables by their root (partitions are not listed)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1, 2",
            (list(SCHEMAS),),
        ).fetchall()
    return [f"{s}.{t}" for s, t in rows]
