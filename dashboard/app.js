/* app.js - the edgespool dashboard: one page, hash routes, no libraries.
 *
 * Reads the node's REST API (docs/api.md) with the page's own credentials.
 * Live figures come from the Server-Sent Events stream /api/live (a "status"
 * event every 2 s); when that cannot be opened (503, or a "busy" event: too
 * many streams) the page polls /api/status every 2 s and /api/series every
 * 10 s instead, and tries the stream again a minute later.
 * Flash wear and memory come from /metrics, read every 10 s: bytes the
 * process wrote per event journaled and commits per second over the last
 * minute, its own memory (USS) beside its RSS.
 * Every text from the node goes in through textContent (never innerHTML),
 * and a failed request shows in the banner, never on the console: the page
 * runs under "default-src 'self'" with no inline script or style.
 */
'use strict';
(function () {
	const WINDOW_MS = 15 * 60 * 1000;
	const POLL_MS = 2000;
	const SERIES_POLL_EVERY = 5; /* polls: /api/series every 10 s */
	const STALE_MS = 7000;
	const LIVE_RETRY_MS = 60000;
	const PAGES = ['overview', 'events', 'devices', 'problems'];
	const WEAR_POLL_MS = 10000;
	const WEAR_WINDOW_MS = 60000;

	const S = {
		status: null,
		kind: null,
		series: [],
		step: 10,
		lastAt: 0,
		page: null,
		events: {next: null, query: ''},
		dead: {next: null, pages: 0},
		errors: [], /* {at, where, text}, newest first */
		lastError: {},
		devicesAt: 0,
		deadAt: 0,
		pend: [], /* [ms, pending] of the last 30 s */
		peak: 0,
		wear: [], /* {t, written, journaled, commits} of the last minute, from /metrics */
		mem: {}, /* {uss, rss} */
	};

	/* ---- small helpers ---------------------------------------------- */

	function $(id) {
		return document.getElementById(id);
	}

	/* A new element with a class and text (both optional). */
	function el(tag, cls, text) {
		const e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text !== undefined && text !== null) e.textContent = String(text);
		return e;
	}

	const nf = new Intl.NumberFormat('en', {maximumFractionDigits: 1});
	function num(v) {
		return typeof v === 'number' && isFinite(v) ? nf.format(v) : '–';
	}

	function bytes(v) {
		if (typeof v !== 'number' || !isFinite(v)) return '–';
		const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
		let i = 0;
		while (v >= 1024 && i < units.length - 1) {
			v /= 1024;
			i++;
		}
		return (i ? v.toFixed(v < 10 ? 1 : 0) : String(v)) + ' ' + units[i];
	}

	/* A duration in seconds as "42 s", "3 min 5 s", "2 h 10 min". */
	function dur(s) {
		if (typeof s !== 'number' || !isFinite(s) || s < 0) return '–';
		if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
		const m = Math.floor(s / 60);
		if (m < 60) return m + ' min ' + Math.round(s % 60) + ' s';
		const h = Math.floor(m / 60);
		if (h < 48) return h + ' h ' + (m % 60) + ' min';
		return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
	}

	/* Unix ms as local "2026-11-27 10:04:05". */
	function when(ms) {
		if (typeof ms !== 'number' || !ms) return '–';
		return new Date(ms).toLocaleString('sv-SE');
	}

	function get(o, path) {
		let v = o;
		for (const k of path.split('.')) v = v && typeof v === 'object' ? v[k] : undefined;
		return v;
	}

	/* ---- the banner: one line per failing request ------------------ */

	const problems = new Map();

	/* Shows message under key, or removes key's line when message is null. */
	function report(key, message) {
		if (message) problems.set(key, message);
		else if (!problems.delete(key)) return;
		const b = $('banner');
		b.replaceChildren();
		for (const m of problems.values()) b.append(el('div', null, m));
		b.hidden = problems.size === 0;
	}

	/* ---- the API ------------------------------------------------------ */

	class HttpError extends Error {
		constructor(status, message) {
			super(message);
			this.status = status;
		}
	}

	/* GET path as JSON; throws HttpError (status 0: the node is unreachable). */
	async function api(path) {
		let r;
		try {
			r = await fetch(path, {headers: {Accept: 'application/json'}, cache: 'no-store'});
		} catch (e) {
			throw new HttpError(0, 'cannot reach the node');
		}
		let body = null;
		try {
			body = await r.json();
		} catch (e) {
			body = null;
		}
		if (!r.ok) {
			const why = body && typeof body.error === 'string' ? body.error : r.statusText;
			throw new HttpError(r.status, why || 'failed');
		}
		return body;
	}

	/* api(path), with failures in the banner under key: the body or null. */
	async function load(key, path) {
		try {
			const body = await api(path);
			report(key, null);
			return body;
		} catch (e) {
			const code = e.status ? e.status + ' ' : '';
			report(key, 'GET ' + path.split('?')[0] + ': ' + code + e.message);
			return null;
		}
	}

	/* ---- the node and its health ----------------------------------- */

	function kindOf(st) {
		if (st.kind === 'agent' || st.kind === 'bridge') return st.kind;
		return st.cloud ? 'bridge' : 'agent';
	}

	function pendingOf(st) {
		return S.kind === 'bridge' ? get(st, 'inbox.backlog') : get(st, 'journal.pending');
	}

	/* [label, class] of the overall health. */
	function health(st) {
		if (st.state === 'stopping') return ['stopping', 'bad'];
		if (S.kind === 'bridge') {
			if (get(st, 'cloud.state') !== 'connected') return ['cloud link down', 'warn'];
			const edges = Array.isArray(st.edge) ? st.edge : [];
			if (edges.some((e) => e.state !== 'connected')) return ['edge link down', 'warn'];
			if (get(st, 'gaps.holes_open') > 0) return ['holes open', 'warn'];
			return ['healthy', 'ok'];
		}
		if (get(st, 'journal.writable') === false) return ['journal failing', 'bad'];
		if (get(st, 'broker.state') !== 'connected') return ['broker down', 'warn'];
		return ['healthy', 'ok'];
	}

	function renderHeader() {
		const st = S.status;
		$('kind').textContent = S.kind === 'bridge' ? 'cloud bridge' : 'edge agent';
		$('node').textContent = (st.site || '?') + ' / ' + (st.node || '?');
		const [label, cls] = health(st);
		const h = $('health');
		h.textContent = label;
		h.className = 'badge ' + cls;
		$('nav-devices').hidden = S.kind === 'bridge';
		document.title = 'edgespool ' + (st.node || '') + ' – ' + label;
	}

	function setLive(mode) {
		const l = $('live');
		l.textContent = mode;
		l.className = 'live mode-' + mode;
	}

	/* ---- stat cards ---------------------------------------------------- */

	/* A card with a title; returns its body to add stats to. */
	function card(parent, title, cls) {
		const c = el('div', 'card' + (cls ? ' ' + cls : ''));
		c.append(el('h2', null, title));
		const body = el('div', 'stats');
		c.append(body);
		parent.append(c);
		return body;
	}

	/* One figure: data-k names it for tests and styles. */
	function stat(parent, k, label, value, cls) {
		const d = el('div', 'stat' + (cls ? ' ' + cls : ''));
		d.dataset.k = k;
		d.append(el('span', 'v', value), el('span', 'l', label));
		parent.append(d);
		return d;
	}

	function stateStat(parent, k, label, value) {
		return stat(parent, k, label, value || '–', 'big ' + (value === 'connected' ? 'ok' : 'bad'));
	}

	/* A used/max bar. */
	function bar(parent, k, used, max) {
		const wrap = el('div', 'barwrap');
		wrap.dataset.k = k;
		const frac = max > 0 ? Math.min(1, used / max) : 0;
		const b = el('div', 'bar');
		const fill = el('div', 'fill' + (frac > 0.9 ? ' bad' : frac > 0.7 ? ' warn' : ''));
		fill.style.width = (frac * 100).toFixed(1) + '%';
		b.append(fill);
		const cap = max > 0 ? bytes(max) + ' (' + (frac * 100).toFixed(1) + ' %)' : 'no cap';
		wrap.append(b, el('div', 'l', bytes(used) + ' used of ' + cap));
		parent.append(wrap);
	}

	/* The last error, in red while it stands (down: the link is not up). */
	function lastError(parent, k, text, down) {
		const p = el('p', 'lasterr' + (text && down ? ' bad' : ''), text ? 'last error: ' + text : 'no error');
		p.dataset.k = k;
		parent.append(p);
	}

	/* ---- flash wear and memory, from /metrics ---------------------------- */

	/* Prometheus text as {"name{labels}": value}. */
	function parseMetrics(text) {
		const out = {};
		for (const line of text.split('\n')) {
			if (!line || line[0] === '#') continue;
			const i = line.lastIndexOf(' ');
			const v = Number(line.slice(i + 1));
			if (i > 0 && isFinite(v)) out[line.slice(0, i)] = v;
		}
		return out;
	}

	async function pollWear() {
		let text;
		try {
			const r = await fetch('/metrics', {cache: 'no-store'});
			if (!r.ok) throw new HttpError(r.status, r.statusText || 'failed');
			text = await r.text();
			report('metrics', null);
		} catch (e) {
			report('metrics', 'GET /metrics: ' + (e.status ? e.status + ' ' : '') + e.message);
			return;
		}
		const m = parseMetrics(text);
		const t = Date.now();
		S.wear.push({t: t, written: m.edgespool_process_write_bytes_total,
			journaled: m.edgespool_events_journaled_total, commits: m.edgespool_journal_commits_total});
		while (S.wear.length > 2 && S.wear[1].t <= t - WEAR_WINDOW_MS) S.wear.shift();
		S.mem = {uss: m.edgespool_process_unique_memory_bytes, rss: m.process_resident_memory_bytes};
		if (S.page === 'overview') renderOverview();
	}

	/* {perEvent, commits} over the samples kept (null: not yet known). */
	function wearRates() {
		const a = S.wear;
		if (a.length < 2) return {perEvent: null, commits: null};
		const p = a[0], q = a[a.length - 1];
		const secs = (q.t - p.t) / 1000, events = q.journaled - p.journaled;
		return {perEvent: events > 0 ? (q.written - p.written) / events : null,
			commits: secs > 0 ? (q.commits - p.commits) / secs : null};
	}

	function wearCard(box) {
		const w = wearRates();
		const c = card(box, 'Flash and memory');
		c.parentNode.dataset.k = 'wear';
		stat(c, 'wear.per_event', 'written per event, last minute', w.perEvent === null ? '–' : bytes(Math.round(w.perEvent)), 'big');
		stat(c, 'wear.commits', 'commits /s', num(w.commits), 'big');
		stat(c, 'mem.uss', 'own memory (USS)', bytes(S.mem.uss));
		stat(c, 'mem.rss', 'resident (RSS, shared libraries too)', bytes(S.mem.rss));
	}

	/* ---- overview: the agent ------------------------------------------ */

	function agentCards(st, box) {
		const b = st.broker || {};
		let c = card(box, 'Broker link');
		stateStat(c, 'broker.state', b.url || 'broker', b.state);
		stat(c, 'broker.inflight', 'in flight', num(b.inflight));
		stat(c, 'broker.connects', 'connects', num(b.connects));
		stat(c, 'broker.failures', 'failures', num(b.failures), b.failures ? 'warn' : '');
		stat(c, 'broker.published', 'published', num(b.published));
		stat(c, 'broker.acked', 'acked', num(b.acked));
		stat(c, 'broker.resent', 'resent', num(b.resent));
		stat(c, 'broker.refused', 'refused', num(b.refused), b.refused ? 'bad' : '');
		lastError(c.parentNode, 'broker.last_error', b.last_error, b.state !== 'connected');

		const j = st.journal || {};
		c = card(box, 'Journal');
		const stuck = j.pending > 0 && j.oldest_pending_age_s > 10;
		stat(c, 'journal.pending', 'pending', num(j.pending), 'big' + (stuck ? ' warn' : ''));
		stat(c, 'journal.oldest_pending_age_s', 'oldest pending', j.pending ? dur(j.oldest_pending_age_s) : '–', 'big');
		stat(c, 'journal.appended', 'appended', num(j.appended));
		stat(c, 'journal.latest_seq', 'latest seq', num(j.latest_seq));
		stat(c, 'journal.acked_seq', 'acked seq', num(j.acked_seq));
		stat(c, 'journal.oldest_seq', 'oldest seq', num(j.oldest_seq));
		bar(c.parentNode, 'journal.used', j.used_bytes, j.max_bytes);
		lastError(c.parentNode, 'journal.last_error', j.last_error, j.writable === false);

		const i = st.ingest || {};
		const r = i.rejected || {};
		c = card(box, 'Ingest');
		stat(c, 'ingest.accepted', 'accepted', num(i.accepted), 'big');
		for (const k of Object.keys(r)) stat(c, 'ingest.rejected.' + k, k.replace('_', ' '), num(r[k]), r[k] ? 'warn' : '');
	}

	function linksTable(rows, cols) {
		const t = el('table', 'list');
		const hr = el('tr');
		for (const [title] of cols) hr.append(el('th', null, title));
		t.append(el('thead'), el('tbody'));
		t.tHead.append(hr);
		for (const row of rows) {
			const tr = el('tr');
			for (const [, fn] of cols) {
				const v = fn(row);
				const td = el('td', null, Array.isArray(v) ? v[0] : v);
				if (Array.isArray(v)) td.className = v[1];
				tr.append(td);
			}
			t.tBodies[0].append(tr);
		}
		const s = el('div', 'scroll');
		s.append(t);
		return s;
	}

	function agentLinks(st, box) {
		const d = st.devices;
		box.append(el('h2', null, 'Device links'));
		if (!d || !Array.isArray(d.links) || !d.links.length) {
			box.append(el('p', 'empty', 'No device links configured.'));
			return;
		}
		const s = el('div', 'stats');
		stat(s, 'devices.devices', 'devices', num(d.devices), 'big');
		stat(s, 'devices.devices_refused', 'devices refused', num(d.devices_refused), d.devices_refused ? 'warn' : '');
		stat(s, 'devices.records_lost_at_devices', 'lost at devices', num(d.records_lost_at_devices), d.records_lost_at_devices ? 'bad' : '');
		stat(s, 'devices.journal_refused', 'journal refused', num(d.journal_refused), d.journal_refused ? 'bad' : '');
		box.append(s);
		box.append(linksTable(d.links, [
			['link', (l) => l.name],
			['open', (l) => (l.open ? ['open', 'ok'] : ['closed', 'bad'])],
			['clients', (l) => (l.kind === 'listen' ? num(l.clients) : '')],
			['records', (l) => num(l.records)],
			['duplicates', (l) => num(l.duplicates)],
			['bad payload', (l) => num(l.bad_payload)],
			['unknown device', (l) => num(l.unknown_device)],
			['frame faults', (l) => num(sumFaults(l.faults))],
		]));
	}

	function sumFaults(f) {
		let n = 0;
		for (const k in f || {}) if (typeof f[k] === 'number') n += f[k];
		return n;
	}

	/* ---- overview: the bridge ------------------------------------------ */

	function bridgeCards(st, box) {
		const c0 = st.cloud || {};
		let c = card(box, 'Cloud link');
		stateStat(c, 'cloud.state', c0.url || 'cloud', c0.state);
		stat(c, 'cloud.inflight', 'in flight', num(c0.inflight));
		stat(c, 'cloud.forwarded', 'forwarded', num(c0.forwarded));
		stat(c, 'cloud.acked', 'acked', num(c0.acked));
		stat(c, 'cloud.failures', 'failures', num(c0.failures), c0.failures ? 'warn' : '');
		stat(c, 'cloud.refused', 'refused', num(c0.refused), c0.refused ? 'bad' : '');
		lastError(c.parentNode, 'cloud.last_error', c0.last_error, c0.state !== 'connected');

		const i = st.inbox || {};
		c = card(box, 'Inbox');
		const stuck = i.backlog > 0 && i.oldest_unforwarded_age_s > 10;
		stat(c, 'inbox.backlog', 'backlog', num(i.backlog), 'big' + (stuck ? ' warn' : ''));
		stat(c, 'inbox.oldest_unforwarded_age_s', 'oldest unforwarded', i.backlog ? dur(i.oldest_unforwarded_age_s) : '–', 'big');
		stat(c, 'inbox.received', 'received', num(i.received));
		stat(c, 'inbox.journaled', 'journaled', num(i.journaled));
		stat(c, 'inbox.duplicates_dropped', 'duplicates dropped', num(i.duplicates_dropped));
		stat(c, 'inbox.deadletters', 'dead letters', num(i.deadletters), i.deadletters ? 'bad' : '');
		bar(c.parentNode, 'inbox.used', i.used_bytes, i.max_bytes);

		const g = st.gaps || {};
		c = card(box, 'Holes');
		stat(c, 'gaps.holes_open', 'holes open', num(g.holes_open), 'big' + (g.holes_open ? ' warn' : ''));
		stat(c, 'gaps.missing', 'missing', num(g.missing));
		stat(c, 'gaps.holes_detected', 'detected', num(g.holes_detected));
		stat(c, 'gaps.filled', 'filled', num(g.filled));
		stat(c, 'gaps.lost', 'lost', num(g.lost), g.lost ? 'bad' : '');
		stat(c, 'gaps.requests', 're-send requests', num(g.requests));
		stat(c, 'order.held', 'held for order', num(get(st, 'order.held')));
	}

	function bridgeLinks(st, box) {
		box.append(el('h2', null, 'Edge links'));
		const edges = Array.isArray(st.edge) ? st.edge : [];
		if (!edges.length) {
			box.append(el('p', 'empty', 'No edge links.'));
			return;
		}
		box.append(linksTable(edges, [
			['broker', (e) => e.url],
			['state', (e) => [e.state, e.state === 'connected' ? 'ok' : 'bad']],
			['failures', (e) => num(e.failures)],
		]));
	}

	/* Time to drain a lane's backlog: '–' when empty, 'not draining' when
	 * nothing goes (eta_s null). */
	function laneEta(l) {
		if (!l.backlog) return '–';
		return typeof l.eta_s === 'number' ? dur(l.eta_s) : ['not draining', 'warn'];
	}

	/* The uplink's priority lanes (cloud.lanes), high first. */
	function bridgeLanes(st, box) {
		box.append(el('h2', null, 'Lanes'));
		const lanes = get(st, 'cloud.lanes');
		if (!Array.isArray(lanes) || !lanes.length) {
			box.append(el('p', 'empty', 'No lanes reported.'));
			return;
		}
		const s = linksTable(lanes, [
			['lane', (l) => l.lane],
			['backlog', (l) => num(l.backlog)],
			['oldest age', (l) => (l.backlog ? dur(l.oldest_age_s) : '–')],
			['drain rate', (l) => num(l.drain_per_s) + ' /s'],
			['time to drain', laneEta],
			['bytes per event', (l) => (l.sent ? bytes(Math.round(l.bytes_per_event)) : '–')],
			['expired', (l) => (l.expired ? [num(l.expired), 'warn'] : num(l.expired))],
		]);
		s.firstChild.id = 'lanes-table';
		box.append(s);
	}

	function renderOverview() {
		const st = S.status;
		if (!st) return;
		const box = $('overview-cards');
		const links = $('overview-links');
		const lanes = $('overview-lanes');
		box.replaceChildren();
		links.replaceChildren();
		lanes.replaceChildren();
		lanes.hidden = S.kind !== 'bridge';
		if (S.kind === 'bridge') {
			bridgeCards(st, box);
			bridgeLinks(st, links);
			bridgeLanes(st, lanes);
		} else {
			agentCards(st, box);
			agentLinks(st, links);
		}
		wearCard(box);
		renderReplay();
	}

	/* ---- series, chart and replay progress ------------------------------ */

	function trimSeries() {
		const a = S.series;
		if (!a.length) return;
		const min = a[a.length - 1].t - WINDOW_MS;
		while (a.length && a[0].t < min) a.shift();
	}

	/* Adds (or updates: the newest step fills up) one /api/series point. */
	function addPoint(p) {
		if (!p || typeof p.t !== 'number') return;
		const a = S.series;
		const last = a[a.length - 1];
		if (last && last.t === p.t) a[a.length - 1] = p;
		else if (!last || p.t > last.t) a.push(p);
		trimSeries();
	}

	async function loadSeries() {
		const s = await load('series', '/api/series');
		if (!s || !Array.isArray(s.points)) return;
		S.step = s.step_s > 0 ? s.step_s : 10;
		S.series = s.points.filter((p) => p && typeof p.t === 'number');
		trimSeries();
		if (S.page === 'overview') renderCharts();
	}

	const SVGNS = 'http://www.w3.org/2000/svg';
	function svg(tag, attrs, text) {
		const e = document.createElementNS(SVGNS, tag);
		for (const k in attrs) e.setAttribute(k, attrs[k]);
		if (text !== undefined) e.textContent = text;
		return e;
	}

	/* 1, 2, 5 times a power of ten, at least v. */
	function niceMax(v) {
		if (!(v > 0)) return 1;
		const p = Math.pow(10, Math.floor(Math.log10(v)));
		for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
		return 10 * p;
	}

	/* Draws lines ([{cls, pts: [[t, v]]}]) over the 15 minutes to end into
	 * box, as an SVG as wide as the box. */
	function drawChart(box, lines, end, height, label) {
		const W = Math.max(260, Math.floor(box.clientWidth || 600));
		const H = height, L = 48, R = 10, T = 8, B = 20;
		const s = svg('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': label});
		let max = 0;
		for (const l of lines) for (const [, v] of l.pts) max = Math.max(max, v);
		max = niceMax(max);
		const x = (t) => L + ((t - (end - WINDOW_MS)) / WINDOW_MS) * (W - L - R);
		const y = (v) => T + (1 - v / max) * (H - T - B);
		for (const f of [0, 0.5, 1]) {
			s.append(svg('line', {x1: L, x2: W - R, y1: y(f * max), y2: y(f * max), class: 'grid'}));
			s.append(svg('text', {x: L - 6, y: y(f * max) + 4, class: 'ylab'}, num(f * max)));
		}
		for (const m of [15, 10, 5, 0]) {
			const cls = 'xlab' + (m === 15 ? ' first' : m === 0 ? ' last' : '');
			s.append(svg('text', {x: x(end - m * 60000), y: H - 5, class: cls}, m ? '−' + m + ' min' : 'now'));
		}
		for (const l of lines) {
			if (!l.pts.length) continue;
			const d = l.pts.map(([t, v], i) => (i ? 'L' : 'M') + x(t).toFixed(1) + ' ' + y(v).toFixed(1)).join(' ');
			s.append(svg('path', {d: d, class: 'line ' + l.cls}));
			const [t, v] = l.pts[l.pts.length - 1]; /* the newest, also when alone */
			s.append(svg('circle', {cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: 'dot ' + l.cls}));
		}
		if (!lines.some((l) => l.pts.length)) {
			s.append(svg('text', {x: W / 2, y: H / 2, class: 'nodata'}, 'no data yet'));
		}
		box.replaceChildren(s);
	}

	function renderCharts() {
		const a = S.series;
		const step = S.step;
		const end = a.length ? a[a.length - 1].t + step * 1000 : Date.now();
		drawChart($('chart-rate'), [
			{cls: 'in', pts: a.map((p) => [p.t + step * 1000, (p.in || 0) / step])},
			{cls: 'out', pts: a.map((p) => [p.t + step * 1000, (p.out || 0) / step])},
		], end, 170, 'events per second in and out');
		drawChart($('chart-pending'), [
			{cls: 'pend', pts: a.map((p) => [p.t + step * 1000, p.pending || 0])},
		], end, 110, 'events pending');
	}

	/* Pending over the last 30 s of status updates, and the largest pending
	 * since the backlog began (0 while nothing is pending). */
	function notePending(st) {
		const v = pendingOf(st);
		if (typeof v !== 'number') return;
		const now = Date.now();
		S.pend.push([now, v]);
		while (S.pend.length && S.pend[0][0] < now - 30000) S.pend.shift();
		S.peak = v > 0 ? Math.max(S.peak, v) : 0;
	}

	/* While a backlog drains: how far, how fast, how long still (from the
	 * status updates of the last 30 s, else the series). Null when nothing
	 * much is pending or pending is not falling. */
	function replayInfo() {
		const pending = pendingOf(S.status);
		if (!(pending > 0)) return null;
		let rate = 0;
		const p = S.pend;
		if (p.length >= 3 && p[p.length - 1][0] > p[0][0]) {
			rate = (p[0][1] - p[p.length - 1][1]) / ((p[p.length - 1][0] - p[0][0]) / 1000);
		} else if (S.series.length >= 2) {
			const a = S.series;
			const n = Math.min(3, a.length - 1);
			rate = (a[a.length - 1 - n].pending - a[a.length - 1].pending) / (n * S.step);
		}
		let peak = Math.max(pending, S.peak);
		for (let i = S.series.length - 1; i >= 0 && S.series[i].pending > 0; i--) peak = Math.max(peak, S.series[i].pending);
		if (!(rate > 0) || peak < 100) return null;
		return {pending: pending, peak: peak, rate: rate, eta: pending / rate};
	}

	function renderReplay() {
		const box = $('replay');
		const r = S.status ? replayInfo() : null;
		box.hidden = !r;
		if (!r) return;
		box.replaceChildren(el('h2', null, 'Replaying the backlog'));
		const b = el('div', 'bar');
		const fill = el('div', 'fill ok');
		fill.style.width = ((1 - r.pending / r.peak) * 100).toFixed(1) + '%';
		b.append(fill);
		const p = el('p', null, num(r.peak - r.pending) + ' of ' + num(r.peak) + ' sent, ' + num(r.rate) +
			' /s, about ' + dur(r.eta) + ' left');
		p.dataset.k = 'replay.eta';
		box.append(b, p);
	}

	/* ---- live updates -------------------------------------------------- */

	/* The errors the node reports, kept as a short history. */
	function noteErrors(st) {
		const found = [
			['broker', get(st, 'broker.last_error')],
			['journal', get(st, 'journal.last_error')],
			['cloud', get(st, 'cloud.last_error')],
		];
		for (const [where, text] of found) {
			if (typeof text !== 'string' || !text || S.lastError[where] === text) continue;
			S.lastError[where] = text;
			S.errors.unshift({at: Date.now(), where: where, text: text});
		}
		const theirs = Array.isArray(st.recent_errors) ? st.recent_errors : [];
		for (const e of theirs) {
			const text = e && (e.message || e.text);
			if (typeof text !== 'string' || S.errors.some((x) => x.text === text)) continue;
			S.errors.unshift({at: e.time_ms || e.ms || Date.now(), where: e.tag || e.where || 'node', text: text});
		}
		S.errors.sort((p, q) => q.at - p.at);
		S.errors.length = Math.min(S.errors.length, 20);
	}

	function onStatus(st) {
		if (!st || typeof st !== 'object') return;
		S.status = st;
		S.kind = kindOf(st);
		S.lastAt = Date.now();
		if (st.series_last) addPoint(st.series_last);
		notePending(st);
		noteErrors(st);
		renderHeader();
		$('updated').textContent = 'updated ' + new Date().toLocaleTimeString('sv-SE');
		if (S.page === 'overview') {
			renderOverview();
			renderCharts();
		} else if (S.page === 'problems') {
			renderProblems();
			if (Date.now() - S.deadAt > 10000 && S.dead.pages <= 1) loadDeadletters(false);
		} else if (S.page === 'devices' && Date.now() - S.devicesAt > 5000) {
			loadDevices();
		}
	}

	let pollTimer = null;
	let polls = 0;

	async function pollOnce() {
		const st = await load('status', '/api/status');
		if (st) onStatus(st);
		if (polls++ % SERIES_POLL_EVERY === 0) await loadSeries();
	}

	function startPolling() {
		if (pollTimer) return;
		setLive('polling');
		polls = 1; /* the series was just loaded */
		pollTimer = setInterval(pollOnce, POLL_MS);
		pollOnce();
	}

	function stopPolling() {
		if (!pollTimer) return;
		clearInterval(pollTimer);
		pollTimer = null;
	}

	/* Opens /api/live; on a refusal (the stream closes for good) polls and
	 * tries the stream again a minute later. */
	function startLive() {
		if (typeof EventSource !== 'function') {
			startPolling();
			return;
		}
		const es = new EventSource('/api/live');
		es.addEventListener('open', () => {
			stopPolling();
			setLive('live');
			loadSeries(); /* what was missed meanwhile */
		});
		es.addEventListener('status', (e) => {
			let st = null;
			try {
				st = JSON.parse(e.data);
			} catch (err) {
				return;
			}
			onStatus(st);
		});
		/* A server at http.live_clients may say so in a 200 stream instead
		 * of a 503 (which Chromium logs on the console). */
		es.addEventListener('busy', () => {
			es.close();
			startPolling();
			setTimeout(startLive, LIVE_RETRY_MS);
		});
		es.addEventListener('error', () => {
			if (es.readyState !== EventSource.CLOSED) {
				setLive('reconnecting');
				return;
			}
			es.close();
			startPolling();
			setTimeout(startLive, LIVE_RETRY_MS);
		});
	}

	/* Says so when no figure came for a while (node gone, network down). */
	function watchStale() {
		const old = S.lastAt && Date.now() - S.lastAt > STALE_MS;
		report('stale', old ? 'no update for ' + dur((Date.now() - S.lastAt) / 1000) + ': is the node up?' : null);
	}

	/* ---- events ---------------------------------------------------------- */

	/* The filter form as query parameters (times as Unix ms). */
	function eventFilter() {
		const f = new FormData($('event-filter'));
		const q = new URLSearchParams();
		for (const k of ['type', 'subject', 'state']) {
			const v = String(f.get(k) || '').trim();
			if (v) q.set(k, v);
		}
		for (const k of ['since', 'until']) {
			const v = String(f.get(k) || '');
			const ms = v ? new Date(v).getTime() : NaN;
			if (isFinite(ms)) q.set(k, String(ms));
		}
		return q;
	}

	function eventRow(e) {
		const tr = el('tr', 'link');
		const id = String(e.id || '');
		tr.tabIndex = 0;
		tr.dataset.id = id;
		const a = el('a', 'mono', id);
		a.href = '#/events/' + encodeURIComponent(id);
		const cells = [num(e.seq), when(e.journaled_ms), e.type, e.subject || '', e.state];
		for (const c of cells) tr.append(el('td', null, c));
		tr.children[4].className = e.state === 'pending' ? 'warn' : 'ok';
		const td = el('td');
		td.append(a);
		tr.append(td);
		return tr;
	}

	async function loadEvents(older) {
		const q = eventFilter();
		q.set('limit', '50');
		if (older && S.events.next !== null) q.set('before', String(S.events.next));
		const body = await load('events', '/api/events?' + q.toString());
		const tb = $('events-table').tBodies[0];
		if (!older) tb.replaceChildren();
		const list = body && Array.isArray(body.events) ? body.events : [];
		for (const e of list) tb.append(eventRow(e));
		S.events.next = body && body.next !== undefined ? body.next : null;
		$('events-older').hidden = S.events.next === null;
		$('events-empty').hidden = tb.rows.length > 0;
	}

	function openRow(ev) {
		if (ev.target.closest('a')) return;
		const tr = ev.target.closest('tr[data-id]');
		if (tr && (ev.type === 'click' || ev.key === 'Enter')) location.hash = '#/events/' + encodeURIComponent(tr.dataset.id);
	}

	function meta(dl, name, value) {
		dl.append(el('dt', null, name), el('dd', null, value));
	}

	async function showEvent(id) {
		$('event-title').textContent = 'Event ' + id;
		const pre = $('event-json');
		const dl = $('event-meta');
		pre.textContent = 'loading…';
		dl.replaceChildren();
		const body = await load('event', '/api/events/' + encodeURIComponent(id));
		if (!body) {
			pre.textContent = '';
			return;
		}
		meta(dl, 'sequence', num(body.seq));
		meta(dl, 'state', body.state || '–');
		meta(dl, 'journaled', when(body.journaled_ms));
		pre.textContent = JSON.stringify(body.event !== undefined ? body.event : body, null, 2);
	}

	/* ---- devices ----------------------------------------------------------- */

	function reading(r) {
		if (!r || typeof r !== 'object') return '–';
		let v = r.value;
		if (typeof r.open === 'boolean') v = r.open ? 'open' : 'closed';
		else if (typeof v === 'number') v = num(v);
		const text = [r.kind, v, r.unit].filter((x) => x !== undefined && x !== null && x !== '').join(' ');
		return r.alarm ? text + ' (alarm)' : text;
	}

	function deviceRow(d) {
		const tr = el('tr');
		const seen = typeof d.last_seen_ms === 'number' ? dur((Date.now() - d.last_seen_ms) / 1000) + ' ago' : '–';
		const cells = [d.id, d.link, d.connected ? 'yes' : 'no', seen, reading(d.last_reading), num(d.records), num(d.last_seq), num(d.boot)];
		for (const c of cells) tr.append(el('td', null, c));
		tr.children[2].className = d.connected ? 'ok' : 'warn';
		if (d.last_reading && d.last_reading.alarm) tr.children[4].className = 'bad';
		return tr;
	}

	async function loadDevices() {
		S.devicesAt = Date.now();
		const tb = $('devices-table').tBodies[0];
		const empty = $('devices-empty');
		if (S.kind === 'bridge') {
			tb.replaceChildren();
			empty.textContent = 'A cloud bridge has no device links.';
			empty.hidden = false;
			return;
		}
		const body = await load('devices', '/api/devices');
		const list = body && Array.isArray(body.devices) ? body.devices : [];
		tb.replaceChildren(...list.map(deviceRow));
		empty.textContent = body ? 'No devices heard yet (or no device links).' : 'Devices unavailable.';
		empty.hidden = list.length > 0;
	}

	/* ---- problems --------------------------------------------------------- */

	function problemCards(st, box) {
		if (S.kind === 'bridge') {
			const i = st.inbox || {};
			const g = st.gaps || {};
			let c = card(box, 'Holes');
			stat(c, 'gaps.holes_open', 'open', num(g.holes_open), 'big' + (g.holes_open ? ' warn' : ''));
			stat(c, 'gaps.missing', 'missing events', num(g.missing));
			stat(c, 'gaps.lost', 'lost for good', num(g.lost), g.lost ? 'bad' : '');
			stat(c, 'gaps.gone_replies', '"gone" replies', num(g.gone_replies));
			c = card(box, 'Refused and dropped');
			stat(c, 'inbox.duplicates_dropped', 'duplicates dropped', num(i.duplicates_dropped));
			stat(c, 'inbox.invalid', 'invalid', num(i.invalid), i.invalid ? 'warn' : '');
			stat(c, 'inbox.deadletters', 'dead letters', num(i.deadletters), i.deadletters ? 'bad' : '');
			stat(c, 'inbox.overload_dropped', 'overload dropped', num(i.overload_dropped), i.overload_dropped ? 'bad' : '');
			stat(c, 'inbox.refused_full', 'refused: inbox full', num(i.refused_full), i.refused_full ? 'bad' : '');
			stat(c, 'cloud.refused', 'refused by the cloud', num(get(st, 'cloud.refused')));
			return;
		}
		const r = get(st, 'ingest.rejected') || {};
		const j = st.journal || {};
		const d = st.devices || {};
		let c = card(box, 'Refused events');
		for (const k of Object.keys(r)) stat(c, 'ingest.rejected.' + k, 'ingest: ' + k.replace('_', ' '), num(r[k]), r[k] ? 'warn' : '');
		stat(c, 'broker.refused', 'refused by the broker', num(get(st, 'broker.refused')));
		stat(c, 'devices.journal_refused', 'device records refused', num(d.journal_refused));
		c = card(box, 'Journal and devices');
		stat(c, 'journal.duplicates', 'duplicates', num(j.duplicates));
		stat(c, 'journal.evicted', 'evicted (full)', num(j.evicted), j.evicted ? 'bad' : '');
		stat(c, 'journal.expired', 'expired', num(j.expired), j.expired ? 'warn' : '');
		stat(c, 'journal.errors', 'commit errors', num(j.errors), j.errors ? 'bad' : '');
		stat(c, 'devices.records_lost_at_devices', 'holes: lost at devices', num(d.records_lost_at_devices), d.records_lost_at_devices ? 'bad' : '');
		const links = Array.isArray(d.links) ? d.links : [];
		stat(c, 'devices.bad_payload', 'bad device payloads', num(links.reduce((n, l) => n + (l.bad_payload || 0), 0)));
		stat(c, 'devices.frame_faults', 'frame faults', num(links.reduce((n, l) => n + sumFaults(l.faults), 0)));
	}

	function renderProblems() {
		const st = S.status;
		if (!st) return;
		const box = $('problem-cards');
		box.replaceChildren();
		problemCards(st, box);
		const ul = $('errors-list');
		ul.replaceChildren(...S.errors.map((e) => {
			const li = el('li');
			li.append(el('span', 'when', new Date(e.at).toLocaleTimeString('sv-SE')), el('span', 'where', e.where), el('span', 'what', e.text));
			return li;
		}));
		$('errors-empty').hidden = S.errors.length > 0;
	}

	function deadRow(d) {
		const tr = el('tr');
		let payload = '–';
		if (typeof d.payload === 'string') payload = d.payload.length > 120 ? d.payload.slice(0, 120) + '…' : d.payload;
		else if (typeof d.payload_base64 === 'string') payload = '(binary, ' + num(d.payload_bytes) + ' bytes)';
		const cells = [num(d.id), when(d.received_ms), d.topic || '', d.reason || '', payload];
		for (const c of cells) tr.append(el('td', null, c));
		tr.children[3].className = 'reason';
		tr.children[4].className = 'mono payload';
		if (typeof d.payload === 'string') tr.children[4].title = d.payload;
		return tr;
	}

	async function loadDeadletters(older) {
		S.deadAt = Date.now();
		const q = new URLSearchParams({limit: '50'});
		if (older && S.dead.next !== null) q.set('before', String(S.dead.next));
		const body = await load('deadletters', '/api/deadletters?' + q.toString());
		const tb = $('deadletters-table').tBodies[0];
		if (!older) tb.replaceChildren();
		const list = body && Array.isArray(body.deadletters) ? body.deadletters : [];
		for (const d of list) tb.append(deadRow(d));
		S.dead.next = body && body.next !== undefined ? body.next : null;
		S.dead.pages = older ? (S.dead.pages || 1) + 1 : 1;
		$('deadletters-older').hidden = S.dead.next === null;
		$('deadletters-empty').hidden = tb.rows.length > 0;
	}

	/* ---- routes ----------------------------------------------------------- */

	function show(section, nav) {
		for (const s of document.querySelectorAll('section.page')) s.hidden = s.id !== 'page-' + section;
		for (const a of document.querySelectorAll('nav.tabs a')) {
			if (a.dataset.page === nav) a.setAttribute('aria-current', 'page');
			else a.removeAttribute('aria-current');
		}
	}

	function route() {
		const parts = location.hash.replace(/^#\/?/, '').split('/');
		let page = PAGES.includes(parts[0]) ? parts[0] : 'overview';
		if (page === 'devices' && S.kind === 'bridge') page = 'overview';
		S.page = page;
		if (page === 'events' && parts[1]) {
			S.page = 'event';
			show('event', 'events');
			showEvent(decodeURIComponent(parts.slice(1).join('/')));
			return;
		}
		show(page, page);
		if (page === 'overview') {
			renderOverview();
			renderCharts();
		} else if (page === 'events') {
			loadEvents(false);
		} else if (page === 'devices') {
			loadDevices();
		} else if (page === 'problems') {
			renderProblems();
			loadDeadletters(false);
		}
	}

	function wire() {
		window.addEventListener('hashchange', route);
		window.addEventListener('unhandledrejection', (e) => {
			e.preventDefault();
			report('internal', 'internal error: ' + (e.reason && e.reason.message ? e.reason.message : e.reason));
		});
		let resizeTimer = null;
		window.addEventListener('resize', () => {
			clearTimeout(resizeTimer);
			resizeTimer = setTimeout(() => S.page === 'overview' && renderCharts(), 150);
		});
		$('event-filter').addEventListener('submit', (e) => {
			e.preventDefault();
			loadEvents(false);
		});
		$('event-filter').addEventListener('reset', () => setTimeout(() => loadEvents(false), 0));
		$('events-older').addEventListener('click', () => loadEvents(true));
		$('deadletters-older').addEventListener('click', () => loadDeadletters(true));
		const tb = $('events-table').tBodies[0];
		tb.addEventListener('click', openRow);
		tb.addEventListener('keydown', openRow);
	}

	async function start() {
		wire();
		setLive('connecting');
		const st = await load('status', '/api/status');
		if (st) onStatus(st);
		route();
		await loadSeries();
		startLive();
		setInterval(watchStale, 2000);
		pollWear();
		setInterval(pollWear, WEAR_POLL_MS);
	}

	start();
})();
