/* dashboard.test.js - drives the dashboard in headless Chromium (Debian's
 * /usr/bin/chromium through playwright-core). Run by test_dashboard.py,
 * which starts the system and answers the requests this script writes on
 * its standard output ("REQ stop_broker"...) with a line on its standard
 * input ("OK [detail]" or "ERR why").
 *
 * Environment: ES_NODE_MODULES (where playwright-core is installed),
 * ES_AGENT_URL, ES_USER, ES_PASSWORD, ES_ARTEFACTS (screenshots).
 *
 * Any console error or page error in any page fails the test. Every wait
 * has a deadline; nothing sleeps to synchronise.
 */
'use strict';
const path = require('path');
const readline = require('readline');
const {chromium} = require(path.join(process.env.ES_NODE_MODULES, 'playwright-core'));

const AGENT = process.env.ES_AGENT_URL;
const CREDS = {username: process.env.ES_USER, password: process.env.ES_PASSWORD};
const OUT = process.env.ES_ARTEFACTS;
const DESKTOP = {width: 1280, height: 800};
const PHONE = {width: 390, height: 844};

const faults = []; /* console errors and page errors, from every page */
let step = 'start';

/* ---- the line protocol with test_dashboard.py ------------------------- */

const lines = [];
let waiting = null;
readline.createInterface({input: process.stdin}).on('line', (l) => {
	if (waiting) waiting(l);
	else lines.push(l);
});

/* Asks the orchestrator for what, waits up to ms for "OK ...": the detail. */
function ask(what, ms) {
	process.stdout.write('REQ ' + what + '\n');
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			waiting = null;
			reject(new Error('no answer to ' + what + ' in ' + ms + ' ms'));
		}, ms);
		const done = (l) => {
			waiting = null;
			clearTimeout(timer);
			if (l.startsWith('OK')) resolve(l.slice(2).trim());
			else reject(new Error(what + ': ' + l));
		};
		if (lines.length) done(lines.shift());
		else waiting = done;
	});
}

function log(msg) {
	process.stdout.write(msg + '\n');
}

/* ---- pages ----------------------------------------------------------- */

function watch(page, name) {
	page.on('console', (m) => {
		if (m.type() === 'error') faults.push(name + ' [' + step + ']: console error: ' + m.text());
	});
	page.on('pageerror', (e) => faults.push(name + ' [' + step + ']: page error: ' + e.message));
	return page;
}

async function shot(page, name, fullPage) {
	const file = path.join(OUT, name + '.png');
	await page.screenshot({path: file, fullPage: !!fullPage});
	log('artefact: ' + file);
}

/* The figure named k (data-k) on the page as a number (NaN if absent). */
function figure(page, k) {
	return page.evaluate((key) => {
		const e = document.querySelector('[data-k="' + key + '"] .v');
		return e ? Number(e.textContent.replace(/,/g, '')) : NaN;
	}, k);
}

/* Waits until the figure k compares (op: '>', '==', '!=') to want: a number
 * for '>', else the text shown. */
function until(page, k, op, want, ms) {
	return page.waitForFunction(([key, o, w]) => {
		const e = document.querySelector('[data-k="' + key + '"] .v');
		if (!e) return false;
		const t = e.textContent;
		if (o === '>') return Number(t.replace(/,/g, '')) > w;
		return o === '==' ? t === String(w) : t !== String(w);
	}, [k, op, want], {timeout: ms, polling: 200});
}

async function nav(page, name) {
	await page.click('nav.tabs a[data-page="' + name + '"]');
	await page.waitForSelector('#page-' + name + ':not([hidden])', {timeout: 5000});
}

/* ---- the scenarios --------------------------------------------------- */

async function login(browser) {
	step = 'login';
	const anon = await browser.newContext();
	const r = await anon.request.get(AGENT + '/');
	if (r.status() !== 401) throw new Error('GET / without credentials answered ' + r.status());
	await anon.close();
	const ctx = await browser.newContext({viewport: DESKTOP, httpCredentials: CREDS});
	const page = watch(await ctx.newPage(), 'agent');
	await page.goto(AGENT + '/#/overview');
	await page.waitForFunction(() => document.getElementById('node').textContent.includes('gw1'), null, {timeout: 10000});
	await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, {timeout: 10000});
	log('login: the overview shows node gw1, updated live over /api/live');
	return {ctx, page};
}

async function overviewMoves(page) {
	step = 'overview';
	await until(page, 'broker.state', '==', 'connected', 10000);
	const before = await figure(page, 'journal.appended');
	await until(page, 'journal.appended', '>', before, 15000);
	await page.waitForSelector('#chart-rate svg path.line.in', {timeout: 25000});
	if (await page.isVisible('#overview-lanes')) throw new Error('the agent shows a Lanes table');
	log('overview: appended went from ' + before + ' to ' + (await figure(page, 'journal.appended')) + ' without a reload');
	/* Flash wear and memory, from /metrics every 10 s: a rate needs two reads. */
	await until(page, 'mem.uss', '!=', '–', 15000);
	await until(page, 'wear.per_event', '!=', '–', 30000);
	await until(page, 'wear.commits', '>', 0, 30000);
	const wear = await page.evaluate(() => ['wear.per_event', 'wear.commits', 'mem.uss', 'mem.rss']
		.map((k) => k + ' ' + document.querySelector('[data-k="' + k + '"] .v').textContent).join(', '));
	log('overview: flash and memory shown: ' + wear);
	await shot(page, 'overview');
}

async function backlog(page) {
	step = 'backlog';
	await ask('stop_broker', 30000);
	await until(page, 'broker.state', '!=', 'connected', 15000);
	await until(page, 'journal.pending', '>', 0, 20000);
	const first = await figure(page, 'journal.pending');
	await until(page, 'journal.pending', '>', first, 20000);
	const grown = await figure(page, 'journal.pending');
	await shot(page, 'overview-backlog');
	log('backlog: broker stopped, pending grew from ' + first + ' to ' + grown);
	await ask('start_broker', 30000);
	await until(page, 'broker.state', '==', 'connected', 20000);
	await until(page, 'journal.pending', '==', '0', 60000);
	log('backlog: broker back, pending drained to 0');
}

async function openEvent(page) {
	step = 'events';
	await nav(page, 'events');
	await page.waitForSelector('#events-table tbody tr', {timeout: 10000});
	await page.fill('#event-filter input[name="type"]', 'alarm.*');
	await page.click('#event-filter button[type="submit"]');
	await page.waitForFunction(() => {
		const rows = [...document.querySelectorAll('#events-table tbody tr')];
		return rows.length > 0 && rows.every((r) => r.children[2].textContent.startsWith('alarm.'));
	}, null, {timeout: 10000});
	await shot(page, 'events');
	const id = await page.getAttribute('#events-table tbody tr', 'data-id');
	step = 'event';
	await page.click('#events-table tbody tr td:nth-child(3)');
	await page.waitForFunction((want) => {
		const pre = document.getElementById('event-json').textContent;
		return location.hash === '#/events/' + want && pre.includes('"id": "' + want + '"');
	}, id, {timeout: 10000});
	await shot(page, 'event');
	log('event: opened ' + id + ', its JSON shows its id');
}

async function devices(page) {
	step = 'devices';
	await nav(page, 'devices');
	await page.waitForFunction(() => document.querySelectorAll('#devices-table tbody tr').length >= 4, null, {timeout: 15000});
	const n = await page.locator('#devices-table tbody tr').count();
	await shot(page, 'devices');
	log('devices: ' + n + ' devices listed');
}

async function deadLetter(page) {
	step = 'problems';
	const reason = await ask('deadletter', 30000);
	await nav(page, 'problems');
	await page.waitForFunction((want) => [...document.querySelectorAll('#deadletters-table tbody td.reason')]
		.some((td) => td.textContent === want), reason, {timeout: 10000});
	await shot(page, 'problems', true);
	log('problems: the dead letter shows its reason: ' + reason);
}

async function phone(browser) {
	step = 'phone';
	const ctx = await browser.newContext({viewport: PHONE, isMobile: true, hasTouch: true, httpCredentials: CREDS});
	const page = watch(await ctx.newPage(), 'phone');
	await page.goto(AGENT + '/#/overview');
	await until(page, 'journal.appended', '>', 0, 10000);
	await page.waitForSelector('#chart-rate svg', {timeout: 10000});
	const wide = await page.evaluate(() => document.documentElement.scrollWidth);
	if (wide > PHONE.width + 1) throw new Error('the phone layout is ' + wide + ' px wide (screen ' + PHONE.width + ')');
	await shot(page, 'overview-phone', true);
	await ctx.close();
	log('phone: the overview fits 390 px without scrolling sideways');
}

async function bridge(ctx) {
	step = 'bridge';
	const url = await ask('bridge', 60000);
	const page = watch(await ctx.newPage(), 'bridge');
	await page.goto(url + '/#/overview');
	await page.waitForFunction(() => document.getElementById('kind').textContent === 'cloud bridge', null, {timeout: 10000});
	await until(page, 'cloud.state', '==', 'connected', 15000);
	await until(page, 'inbox.received', '>', 0, 15000);
	await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, {timeout: 10000});
	if (await page.isVisible('#nav-devices')) throw new Error('the bridge shows a Devices page');
	await until(page, 'mem.uss', '!=', '–', 15000);
	/* The uplink's lanes: one row each, high first, every column filled. */
	await page.waitForFunction(() => {
		const rows = [...document.querySelectorAll('#overview-lanes:not([hidden]) #lanes-table tbody tr')];
		return rows.map((r) => r.children[0].textContent).join(',') === 'high,normal,low' &&
			rows.every((r) => r.children.length === 7 && r.children[3].textContent.endsWith(' /s'));
	}, null, {timeout: 10000});
	const heads = await page.$$eval('#lanes-table thead th', (ths) => ths.map((t) => t.textContent).join(', '));
	await shot(page, 'bridge', true);
	log('bridge: its dashboard shows the cloud link connected, events received, and the lanes (' + heads + ')');
	await page.close();
}

async function main() {
	const browser = await chromium.launch({
		executablePath: '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu'],
	});
	let page = null;
	try {
		const s = await login(browser);
		page = s.page;
		await overviewMoves(page);
		await backlog(page);
		await openEvent(page);
		await devices(page);
		await deadLetter(page);
		await phone(browser);
		await bridge(s.ctx);
		step = 'end';
		if (faults.length) throw new Error('console or page errors:\n  ' + faults.join('\n  '));
		log('dashboard: every scenario passed, no console error');
	} catch (e) {
		log('FAILED in step ' + step + ': ' + e.message);
		if (faults.length) log('console or page errors so far:\n  ' + faults.join('\n  '));
		if (page) await shot(page, 'failure-' + step, true).catch(() => {});
		process.exitCode = 1;
	} finally {
		await browser.close();
		process.stdin.destroy();
	}
}

main();
