package client

// DirectMin is the smallest small file a download writes past the page cache.
const DirectMin = directMin
