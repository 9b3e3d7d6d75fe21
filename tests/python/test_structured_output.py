"""Structured output, forced tool calls and log probabilities on the real model
(Qwen2.5-Coder-0.5B-Instruct), through the official `openai` client against
qwen-embed-server and through the Python binding:

- ``client.beta.chat.completions.parse`` with nested Pydantic models returns a valid
  object for every prompt (24 prompts, four models: nested objects, lists of objects,
  optional fields, enums), non-streamed and streamed, and string fields hold their
  regular-expression patterns;
- response_format json_object returns a JSON object; tool_choice "required" and a named
  tool force a call even when the user does not ask for one;
- log probabilities equal log-softmax of `qwen logits` within 1e-4 (the sampled token's
  and the top alternatives), and the grammar's mask shows in them (refused tokens never
  appear among the alternatives).
"""
import enum
import json
import pathlib
import subprocess
import sys
from typing import List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import openai  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

import qwen_embed  # noqa: E402
from conftest import ServerProcess  # noqa: E402


class Address(BaseModel):
    street: str
    city: str
    country: str


class Person(BaseModel):
    name: str
    age: int
    email: Optional[str]
    address: Address


class LineItem(BaseModel):
    product: str
    quantity: int
    unit_price: float


class Order(BaseModel):
    order_id: str
    customer: str
    items: List[LineItem]
    paid: bool


class Sentiment(str, enum.Enum):
    positive = "positive"
    negative = "negative"
    neutral = "neutral"


class Review(BaseModel):
    product: str
    sentiment: Sentiment
    score: int
    tags: List[str]


class Step(BaseModel):
    explanation: str
    output: str


class MathReasoning(BaseModel):
    steps: List[Step]
    final_answer: str


class Contact(BaseModel):
    """String fields held to regular expressions (JSON Schema `pattern`)."""
    name: str
    phone: str = Field(pattern=r"^\(\d{3}\) \d{3}-\d{4}$")
    zip_code: str = Field(pattern=r"^\d{5}$")
    sku: str = Field(pattern=r"^[A-Z]{3}-\d{2,4}$")
    note: str = Field(pattern=r"^(?:urgent|later)")   # anchored at the start only: any text may follow


PROMPTS = [
    (Person, "Extract the person: John Smith is 34 years old, lives at 12 Baker Street in London, UK; email john.smith@example.com."),
    (Person, "Maria Garcia (29) lives at Calle Mayor 5, Madrid, Spain. She has no email address."),
    (Person, "Extract the details: Ken Tanaka, age 51, 3-1 Marunouchi, Tokyo, Japan, ken@tanaka.jp"),
    (Person, "Who is described here? 'Anna Müller, 42, Hauptstraße 7, Berlin, Germany. Mail: anna@mueller.de'"),
    (Person, "Fill in a record for a fictional 20-year-old student living in Paris, France."),
    (Person, "Parse: name=Li Wei; age=63; street=88 Nanjing Road; city=Shanghai; country=China; email=none"),
    (Order, "Order A-1001 by Alice: 2 notebooks at 3.50 each and 1 pen at 1.20. It has been paid."),
    (Order, "Create the order record: order 77, customer Bob, three coffee mugs at 8 dollars each, not paid yet."),
    (Order, "Customer Carol ordered 10 apples (0.30 each) and 2 loaves of bread (2.75 each), order id X9; unpaid."),
    (Order, "Order #5521 for Dave: one laptop, 999.99. Payment received."),
    (Order, "Turn this into an order: Eve buys 4 tickets at 12.5 each, order id T-4, paid by card."),
    (Order, "Order 'Q-3' from Frank with no items yet, not paid."),
    (Review, "Review: 'This keyboard is fantastic, the keys feel great and the battery lasts weeks.' Score it 1-10."),
    (Review, "Classify this review of the XPhone 12: 'Screen cracked after two days. Terrible.'"),
    (Review, "Review of a coffee maker: 'It works. Nothing special.' Give tags too."),
    (Review, "Analyze: 'The hotel room was clean but the staff was rude.' (product: Hotel Aurora)"),
    (Review, "'Best running shoes I have ever owned!!!' - about the Swift Runner 3."),
    (Review, "Summarize the sentiment of 'meh, the headphones are okay for the price' as a review record."),
    (MathReasoning, "Solve 8x + 7 = -23 step by step."),
    (MathReasoning, "What is 15% of 240? Show your steps."),
    (MathReasoning, "A train travels 60 km in 45 minutes. What is its speed in km/h?"),
    (MathReasoning, "Compute 17 * 23 step by step."),
    (MathReasoning, "If 3 pencils cost 45 cents, how much do 7 pencils cost?"),
    (MathReasoning, "Simplify (2x + 3) - (x - 5)."),
]

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the current time in a time zone.",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}


@pytest.fixture(scope="module")
def server(model_path):
    s = ServerProcess(model_path, "--parallel", "2")
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)


def test_parse_returns_a_valid_object_for_every_prompt(client):
    for cls, prompt in PROMPTS:
        completion = client.beta.chat.completions.parse(
            model="qwen", messages=[{"role": "user", "content": prompt}], response_format=cls,
            temperature=0, max_tokens=600)
        choice = completion.choices[0]
        assert choice.finish_reason == "stop", (prompt, choice.message.content)
        assert isinstance(choice.message.parsed, cls), (prompt, choice.message.content)
        # The text is the object: nothing before or after it but whitespace.
        assert cls.model_validate_json(choice.message.content) == choice.message.parsed


def test_parse_streamed_and_sampled(client):
    with client.beta.chat.completions.stream(
            model="qwen", messages=[{"role": "user", "content": PROMPTS[6][1]}], response_format=Order,
            temperature=0.9, top_p=0.95, seed=7, max_tokens=600) as stream:
        deltas = [event for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 5
    assert isinstance(final.choices[0].message.parsed, Order)


def test_patterns_hold_in_parsed_objects(client):
    # Pydantic validates each pattern when `parse` builds the object.
    prompts = ["Contact: Jane Roe, phone 555 123 4567, zip 90210, ordered part ABC-123. Call her back soon.",
               "Make up a customer contact record for a hardware store.",
               "Record: Tom, (212) 555-0188, 10001, item XYZ-9, no rush."]
    for i, prompt in enumerate(prompts):
        completion = client.beta.chat.completions.parse(
            model="qwen", messages=[{"role": "user", "content": prompt}], response_format=Contact,
            temperature=0 if i < 2 else 0.9, seed=i, max_tokens=300)
        choice = completion.choices[0]
        assert choice.finish_reason == "stop", (prompt, choice.message.content)
        assert isinstance(choice.message.parsed, Contact), (prompt, choice.message.content)


def test_json_object_mode(client):
    r = client.chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "Describe a cat in JSON."}],
        response_format={"type": "json_object"}, temperature=0, max_tokens=300)
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_forced_tool_calls(client):
    hello = [{"role": "user", "content": "Hello! How are you today?"}]
    free = client.chat.completions.create(model="qwen", messages=hello, tools=[WEATHER, TIME], temperature=0,
                                          max_tokens=60)
    assert not free.choices[0].message.tool_calls   # left to itself, the model just answers
    forced = client.chat.completions.create(model="qwen", messages=hello, tools=[WEATHER, TIME],
                                            tool_choice="required", temperature=0, max_tokens=200)
    calls = forced.choices[0].message.tool_calls
    assert forced.choices[0].finish_reason == "tool_calls" and len(calls) == 1
    assert calls[0].function.name in ("get_weather", "get_time")
    json.loads(calls[0].function.arguments)
    named = client.chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "What time is it in Paris?"}], tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, temperature=0, max_tokens=200)
    call = named.choices[0].message.tool_calls[0]
    arguments = json.loads(call.function.arguments)
    assert call.function.name == "get_weather" and set(arguments) == {"city", "unit"}
    assert arguments["unit"] in ("celsius", "fahrenheit")


def test_logprobs_in_openai_shapes(client):
    r = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "Say hi."}],
                                       temperature=0, max_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content).startswith(r.choices[0].message.content[:4])
    for t in content:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
        assert t.top_logprobs[0].token == t.token   # greedy: the sampled token is the most likely
    streamed = list(client.chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "Say hi."}], temperature=0, max_tokens=8,
        logprobs=True, top_logprobs=3, stream=True))
    tokens = [t.token for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert tokens == [t.token for t in content]
    completion = client.completions.create(model="qwen", prompt="def add(a, b):", max_tokens=6, temperature=0, logprobs=2)
    lp = completion.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 6


def test_logprobs_equal_the_softmax_of_the_logits(model_path, qwen_cli):
    model = qwen_embed.Model(model_path)
    session = model.session(n_ctx=512)
    for prompt, gen in (("def fibonacci(n):", dict(temperature=0, repetition_penalty=1.0)),
                        ("The capital of France is", dict(temperature=0.8, top_p=0.9, seed=3, repetition_penalty=1.0))):
        session.generate(prompt, max_tokens=12, logprobs=5, **gen)
        entries = session.logprobs()
        assert len(entries) == 12
        ids = model.tokenize(prompt) + [e["token"] for e in entries]
        p = len(ids) - len(entries)
        # `qwen logits --as-generated P`: the logits of positions P-1.. computed as a reply
        # computes them (prompt prefilled, each token decoded alone), printed with log-sum-exp.
        out = subprocess.run([qwen_cli, "logits", "-m", model_path, "--ids", ",".join(map(str, ids)), "--top", "6",
                              "--at", ",".join(str(e["token"]) for e in entries), "--as-generated", str(p)],
                             check=True, capture_output=True, text=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [r["pos"] for r in rows] == list(range(p - 1, len(ids) - 1))
        for e, row in zip(entries, rows):
            logits = dict(row["top"]) | dict(row["at"])
            assert abs(e["logprob"] - (logits[e["token"]] - row["logsumexp"])) < 1e-4, (e, row)
            assert [t["token"] for t in e["top_logprobs"]] == [t for t, _ in row["top"][:5]]
            for alternative in e["top_logprobs"]:
                assert abs(alternative["logprob"] - (logits[alternative["token"]] - row["logsumexp"])) < 1e-4
    model.close()


def test_the_grammar_mask_shows_in_the_logprobs(model_path):
    model = qwen_embed.Model(model_path)
    session = model.session()
    reply = session.chat("Is the sky blue? Answer yes or no.", grammar='root ::= "yes" | "no"', temperature=0,
                         logprobs=20)
    assert reply in ("yes", "no")
    so_far = b""
    for e in session.logprobs():
        assert e["top_logprobs"], e
        for t in e["top_logprobs"]:   # only continuations the grammar allows
            assert any(word.startswith(so_far + t["bytes"]) for word in (b"yes", b"no")), (so_far, t)
        so_far += e["bytes"]
    assert so_far.decode() == reply
    with pytest.raises(qwen_embed.InvalidArgumentError, match="line 1, column 10"):
        session.chat("hi", grammar='root ::= "yes')
    with pytest.raises(qwen_embed.InvalidArgumentError, match="properties/a"):
        session.chat("hi", json_schema={"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=x)"}}})
    model.close()
