// An MCP server (Streamable HTTP, stateless) for bastion's tests of tool changes: its one
// tool, `lookup`, is described by the text in $DESCRIPTION_FILE, read on every request, so
// a test changes the tool between two connections by rewriting the file. Every request's
// headers are appended to $HEADERS_FILE (one JSON object per line), so a test can check
// what bastion sent. Listens on 127.0.0.1:$PORT.
import fs from 'node:fs';
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const port = Number(process.env.PORT);
const descriptionFile = process.env.DESCRIPTION_FILE;
const headersFile = process.env.HEADERS_FILE;

const server = http.createServer((req, res) => {
  fs.appendFileSync(headersFile, JSON.stringify(req.headers) + '\n');
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', async () => {
    const mcp = new McpServer({ name: 'changing', version: '1.0.0' });
    mcp.registerTool(
      'lookup',
      { description: fs.readFileSync(descriptionFile, 'utf8'), inputSchema: { word: z.string() } },
      async ({ word }) => ({ content: [{ type: 'text', text: `the meaning of ${word}` }] }),
    );
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => { transport.close(); mcp.close(); });
    try {
      await mcp.connect(transport);
      await transport.handleRequest(req, res, body ? JSON.parse(body) : undefined);
    } catch (e) {
      if (!res.headersSent) { res.writeHead(500); }
      res.end(String(e));
    }
  });
});
server.listen(port, '127.0.0.1', () => console.error(`listening on port ${port}`));
