# Recall in a container: built in one stage (dev dependencies, TypeScript), run in another with only dist/ and the
# production dependencies, as the unprivileged `node` user. docker-compose.yml builds it.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    RECALL_HOST=0.0.0.0 \
    RECALL_PORT=8080
WORKDIR /app
# Owned by root and read-only to the process: it needs to write nothing but its own (optional) snapshot file.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node as PID 1 receives SIGTERM itself: Recall drains in-flight requests (server.shutdown_grace_ms) and exits 0.
CMD ["node", "dist/main.js"]
