package schema_test

import (
	"errors"
	"fmt"

	"xmppgw/schema"
)

func ExampleValidateItem() {
	err := schema.ValidateItem([]byte(`{"target":"alice@example.org","text":"Your order shipped","receipt":true}`))
	fmt.Println(err)
	err = schema.ValidateItem([]byte(`{"target":"alice@example.org","text":"hi","type":"available"}`))
	fmt.Println(errors.Is(err, schema.ErrInvalid))
	fmt.Println(err)
	// Output:
	// <nil>
	// true
	// schema: item.schema.json: /type: value must be one of <nil>, 'chat', 'normal', 'headline', 'groupchat'
}

func ExampleValidateEvent() {
	err := schema.ValidateEvent([]byte(`{"kind":"receipt","id":"order-42","status":"displayed",` +
		`"from":"alice@example.org/phone","received_at":"2026-11-22T10:00:00.123456Z"}`))
	fmt.Println(err)
	// Output:
	// <nil>
}
