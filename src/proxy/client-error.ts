// Answers what Node's HTTP parser rejects before Fastify sees a request (a head over server.max_header_bytes, bytes
// that are not HTTP, a request too slow to arrive) in OpenAI's error shape, then closes the connection.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { fromClientError } from '../openai/errors.js';

export function clientErrorHandler(maxHeaderBytes: number): (err: Error & { code?: string }, socket: Socket) => void {
  return (err, socket) => {
    // A reset connection has nobody left to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const answer = fromClientError(err, maxHeaderBytes);
    const body = JSON.stringify(answer.toBody());
    if (!socket.writable) return void socket.destroy();
    socket.end(`HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  };
}
