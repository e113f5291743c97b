-- LSP positions <-> buffer (row, byte column), in the client's negotiated encoding.
local M = {}

local function line_text(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

-- LSP character of byte column `col` on `line`.
function M.character(line, col, encoding)
  if encoding == 'utf-8' then return col end
  local utf32, utf16 = vim.str_utfindex(line, math.min(col, #line))
  return encoding == 'utf-32' and utf32 or utf16
end

-- Byte column of LSP character `character` on `line` (clamped to the line).
function M.byte(line, character, encoding)
  if encoding == 'utf-8' then return math.min(character, #line) end
  local ok, col = pcall(vim.str_byteindex, line, character, encoding ~= 'utf-32')
  return ok and col or #line
end

function M.to_lsp(bufnr, row, col, encoding)
  return { line = row, character = M.character(line_text(bufnr, row), col, encoding) }
end

-- (row, byte column) of an LSP position.
function M.from_lsp(bufnr, pos, encoding)
  return pos.line, M.byte(line_text(bufnr, pos.line), pos.character, encoding)
end

return M
