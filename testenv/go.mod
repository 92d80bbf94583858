// This go.mod only keeps the npm packages below out of the main module's ./... pattern.
module testenv

go 1.26
