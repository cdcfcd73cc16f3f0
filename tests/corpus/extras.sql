--
-- Tables the corpus test adds to Pagila and Chinook (see tests/corpus/README.md), for what the
-- samples do not have: a list-partitioned table (Pagila's payment is range-partitioned), an
-- unbounded numeric holding more than 10 fractional digits, and a column named "at".
--

-- Film reviews, partitioned by language; long bodies are TOASTed.
CREATE TABLE public.film_review (
    review_id bigint NOT NULL,
    lang text NOT NULL,
    film_id integer NOT NULL REFERENCES public.film (film_id) ON UPDATE CASCADE ON DELETE CASCADE,
    customer_id integer REFERENCES public.customer (customer_id) ON UPDATE CASCADE ON DELETE SET NULL,
    rating public.mpaa_rating,
    stars numeric(3,1) CHECK (stars BETWEEN 0 AND 5),
    title text,
    body text,
    tags text[],
    posted_at timestamp with time zone DEFAULT now() NOT NULL,
    last_update timestamp with time zone DEFAULT now() NOT NULL,
    PRIMARY KEY (lang, review_id)
)
PARTITION BY LIST (lang);

CREATE TABLE public.film_review_en PARTITION OF public.film_review FOR VALUES IN ('en');
CREATE TABLE public.film_review_de PARTITION OF public.film_review FOR VALUES IN ('de');
CREATE TABLE public.film_review_ja PARTITION OF public.film_review FOR VALUES IN ('ja');
CREATE TABLE public.film_review_other PARTITION OF public.film_review DEFAULT;

CREATE TRIGGER last_updated BEFORE UPDATE ON public.film_review
    FOR EACH ROW EXECUTE FUNCTION public.last_updated();

-- Daily exchange rates against USD, as a rates feed quotes them (up to 30 fractional digits).
CREATE TABLE chinook.exchange_rate (
    currency_code character(3) NOT NULL,
    rate_date date NOT NULL,
    rate numeric NOT NULL,
    inverse numeric,
    source text,
    PRIMARY KEY (currency_code, rate_date)
);

-- What happened to an invoice, and when ("at" is a reserved word in some SQL dialects).
CREATE TABLE chinook.invoice_event (
    event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id integer NOT NULL REFERENCES chinook.invoice (invoice_id) ON DELETE CASCADE,
    kind text NOT NULL,
    at timestamp with time zone NOT NULL,
    payload jsonb
);
