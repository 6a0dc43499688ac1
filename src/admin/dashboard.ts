// GET /recall/dashboard: the live page (src/admin/dashboard-page.ts) that polls /recall/stats. It holds no data of
// its own, so it is as open as /recall/stats.
import type { FastifyInstance } from 'fastify';
import { DASHBOARD_HTML } from './dashboard-page.js';

export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  app.get('/recall/dashboard', async (_request, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      // Everything is inline; nothing may load from elsewhere.
      .header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
      .send(DASHBOARD_HTML));
}
