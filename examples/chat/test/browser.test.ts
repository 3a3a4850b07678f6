/**
 * The web page in a real browser: Debian's chromium (`/usr/bin/chromium`), driven by
 * playwright-core. Two pages chat and see each other's presence and typing. Never downloads a
 * browser; if chromium is missing, this test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { silentLogger } from "@cinder/runtime";
import { startChat, type ChatServer } from "../src/server.js";

const CHROMIUM = "/usr/bin/chromium";
let chat: ChatServer;
let browser: Browser | undefined;

beforeAll(async () => {
  chat = await startChat({ port: 0, logger: silentLogger });
});
afterAll(async () => {
  await browser?.close();
  await chat?.stop();
});

async function open(user: string): Promise<Page> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => void problems.push(String(e)));
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  (page as any).problems = problems;
  await page.goto(chat.url + "/");
  await page.waitForSelector('#status[data-state="online"]', { timeout: 10_000 });
  await page.fill("#user", user);
  await page.fill("#room", "lobby");
  await page.click("#join");
  await page.waitForSelector('body[data-joined="lobby"]', { timeout: 10_000 });
  return page;
}

describe("web page in chromium", () => {
  it("two pages chat and see each other's presence and typing", async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is required (apt-get install chromium)`).toBe(true);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const alice = await open("alice");
    const bob = await open("bob");

    // presence: each sees both
    for (const page of [alice, bob]) {
      await page.waitForSelector('#online li[data-user="alice"]');
      await page.waitForSelector('#online li[data-user="bob"]');
    }
    expect(await alice.$$eval("#online li", (lis) => lis.map((li) => (li as HTMLElement).dataset.user))).toEqual(["alice", "bob"]);

    // typing shows on the other page, and clears on send
    await alice.type("#message", "hi bob");
    await bob.waitForSelector('#online li[data-user="alice"][data-typing="true"]');
    expect(await bob.textContent('#online li[data-user="alice"]')).toContain("typing");
    await alice.press("#message", "Enter");
    await bob.waitForSelector('#messages li:has(.body:text-is("hi bob"))');
    await bob.waitForSelector('#online li[data-user="alice"][data-typing="false"]');
    expect(await bob.textContent("#messages li:last-child .user")).toBe("alice");
    await alice.waitForSelector('#messages li:has(.body:text-is("hi bob"))');
    await alice.waitForFunction(() => (document.getElementById("message") as HTMLInputElement).value === "");

    // and back
    await bob.fill("#message", "hello alice");
    await bob.click("#send");
    await alice.waitForSelector('#messages li:has(.body:text-is("hello alice"))');

    // bob leaves: alice's list drops him
    await bob.context().close();
    await alice.waitForSelector('#online li[data-user="bob"]', { state: "detached" });
    expect(await alice.$$eval("#online li", (lis) => lis.map((li) => (li as HTMLElement).dataset.user))).toEqual(["alice"]);
    expect(Object.keys(chat.presence.list("room:lobby"))).toEqual(["alice"]);
    expect((alice as any).problems).toEqual([]);
  });
});
